"""Word pools the synthetic pages are built from."""

from __future__ import annotations

__all__ = [
    "ANCHORS",
    "COUNTRIES",
    "LANGUAGES",
    "PLATFORMS",
    "SEMANTIC",
    "SUBDOMAINS",
    "TITLE_WORDS",
    "TLDS",
    "WORDS",
]

WORDS = (
    "alpha", "amber", "atlas", "beacon", "birch", "blue", "bright", "canyon", "cedar",
    "cloud", "coral", "crest", "delta", "echo", "ember", "falcon", "fern", "field", "forge",
    "garden", "granite", "harbor", "hazel", "iron", "island", "jade", "kite", "lake", "lark",
    "lumen", "maple", "meadow", "mesa", "north", "nova", "oak", "ocean", "orbit", "pine",
    "pixel", "prairie", "quartz", "raven", "ridge", "river", "sage", "signal", "silver",
    "spark", "spruce", "stone", "summit", "terra", "tide", "timber", "trail", "valley",
    "vector", "willow", "wind", "zen", "metro", "urban", "daily",
)  # fmt: skip
TLDS = ("com", "com", "com", "org", "net", "io", "de", "co.uk", "fr", "nl", "info", "blog")
COUNTRIES = ("US", "US", "US", "DE", "GB", "FR", "NL", "CA", "IN", "AU", "WW", None)
LANGUAGES = ("en", "en", "en", "en", "de", "fr", "nl", "es", None)
PLATFORMS = ("cms", "blogs", "ecommerce", "message-boards", "wikis", "news", "organization")
SEMANTIC = ("article", "section", "main", "footer", "header", "nav", "aside", "summary", None)
SUBDOMAINS = ("blog.", "shop.", "docs.", "news.")
TITLE_WORDS = (
    "Guide", "Review", "Best", "Tools", "News", "How", "Top", "Tips", "Resources",
    "Weekly", "Notes", "Digest", "Links", "Roundup", "Community", "Handbook",
)  # fmt: skip
ANCHORS = (
    "click here", "read more", "this article", "official site", "source", "documentation",
    "homepage", "learn more", "see the guide", "download", "pricing", "our partner",
)  # fmt: skip
