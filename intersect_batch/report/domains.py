"""Which site a referring host belongs to: its registrable domain, by the Public Suffix List.

``www.cloudbeacon.org`` and ``cloudbeacon.org`` are one site to an outreach person, and
so are ``blog.example.co.uk`` and ``example.co.uk``; ``alice.blogspot.com`` and
``bob.blogspot.com`` are not. The list that knows this is tldextract's copy of the
Public Suffix List, private section included. Its snapshot ships inside the package and
is the only source used: no download, no cache file, so a report is the same on every
machine and at any hour, network or not.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import tldextract

__all__ = ["host_of", "normal_host", "registrable_domain"]


@functools.cache
def _extractor() -> tldextract.TLDExtract:
    # Imported here: tldextract brings requests along, which a crawl without a report
    # never needs to load.
    import tldextract

    return tldextract.TLDExtract(
        cache_dir=None,  # never read or write a cache file
        suffix_list_urls=(),  # never fetch a list: the bundled snapshot is the list
        fallback_to_snapshot=True,
        # blogspot.com, github.io...: each subdomain there is a site of its own.
        include_psl_private_domains=True,
    )


def _is_host_name(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "-._" for c in name)


def normal_host(host: str) -> str:
    """``host`` lower-cased, without a trailing dot; a text that is no host name (items are
    untrusted) comes back only stripped of surrounding blanks."""
    name = host.strip().rstrip(".").lower()
    return name if _is_host_name(name) else host.strip()


@functools.lru_cache(maxsize=1 << 16)
def registrable_domain(host: str) -> str:
    """The registrable domain of ``host`` (``www.a.co.uk`` -> ``a.co.uk``), lower-cased.

    A suffix the list does not know counts as one label (the list's default rule). A
    host that has no registrable domain (an IP address, ``localhost``, a public suffix)
    is its own domain; a text that is no host name is returned as :func:`normal_host`
    gives it, never parsed.
    """
    name = normal_host(host)
    if not _is_host_name(name):
        return name
    found = _extractor().extract_str(name).top_domain_under_public_suffix
    if found:
        return found
    labels = name.split(".")
    if len(labels) < 3 or _is_ip_address(name):
        return name
    # A suffix the list does not know (``.example``, a new TLD): the list's own default
    # rule, "*", makes the last label the public suffix.
    return ".".join(labels[-2:])


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_of(url: str) -> str | None:
    """The host name of an absolute URL, or ``None`` when it has none."""
    try:
        return urlsplit(url.strip()).hostname or None
    except ValueError:
        return None
