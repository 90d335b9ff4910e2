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
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import tldextract

__all__ = ["Sites", "host_of", "normal_host", "registrable_domain"]


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


#: Letters, digits, ``-``, ``_`` and dots: a host name (any script's letters, as in IDNs).
_host_name = re.compile(r"[\w.-]+").fullmatch


def normal_host(host: str) -> str:
    """``host`` lower-cased, without a trailing dot; a text that is no host name (items are
    untrusted) comes back only stripped of surrounding blanks."""
    name = host.strip().rstrip(".").lower()
    return name if _host_name(name) else host.strip()


def _registrable(name: str) -> str:
    """The registrable domain of a :func:`normal_host` name."""
    if not _host_name(name):
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


@functools.lru_cache(maxsize=4096)
def registrable_domain(host: str) -> str:
    """The registrable domain of ``host`` (``www.a.co.uk`` -> ``a.co.uk``), lower-cased.

    A suffix the list does not know counts as one label (the list's default rule). A
    host that has no registrable domain (an IP address, ``localhost``, a public suffix)
    is its own domain; a text that is no host name is returned as :func:`normal_host`
    gives it, never parsed.
    """
    return _registrable(normal_host(host))


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Sites:
    """Host names to ``(host as shown, registrable domain)``, remembered for one pass.

    One pass over a job meets the same hosts again and again; each is looked up in the
    list once. What is remembered grows with the job's distinct hosts and goes with the
    object: nothing is kept from one job to the next.
    """

    def __init__(self) -> None:
        self._known: dict[str, tuple[str, str]] = {}

    def __call__(self, host: str) -> tuple[str, str]:
        """``(normal_host(host), registrable_domain(host))``."""
        found = self._known.get(host)
        if found is None:
            shown = normal_host(host)
            shown = host if shown == host else shown  # one string, not two equal ones
            site = _registrable(shown)
            found = self._known[host] = (shown, shown if site == shown else site)
        return found


def host_of(url: str) -> str | None:
    """The host name of an absolute URL, or ``None`` when it has none."""
    try:
        return urlsplit(url.strip()).hostname or None
    except ValueError:
        return None
