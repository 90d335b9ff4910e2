"""Which proxy the calls go through: the one the environment names, as HTTP tools read it.

``HTTPS_PROXY`` (for an ``https://`` base URL) or ``HTTP_PROXY`` (for ``http://``), each
also in lower case (which wins), else ``ALL_PROXY``; ``NO_PROXY`` lists, separated by
commas, the hosts reached directly, as curl reads it: ``example.com`` (or
``.example.com``) also covers its subdomains, ``host:port`` only that port, an address
or a network (``10.0.0.0/8``) the addresses in it, ``*`` every host. A proxy written
without a scheme is ``http://``; ``user:password@`` in it is sent to the proxy only.

One rule of our own, as Go's net/http has it: a loopback base URL (``localhost``,
``127.0.0.0/8``, ``::1``) is never proxied, since a proxy elsewhere cannot reach this
machine's loopback (the emulator there would look unreachable).
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from intersect_batch.errors import UsageError

__all__ = ["Proxy", "proxy_for"]


@dataclass(frozen=True)
class Proxy:
    """A proxy to send the calls through.

    ``url`` is what the HTTP client is handed, with the proxy's own credentials if the
    variable had some (kept out of the repr); ``shown`` is the same without them, for
    the logs; ``variable`` names where it came from.
    """

    url: str = field(repr=False)
    shown: str
    variable: str


def _setting(environ: Mapping[str, str], name: str) -> tuple[str, str] | None:
    for variable in (name.lower(), name.upper()):
        value = environ.get(variable, "").strip()
        if value:
            return variable, value
    return None


def _is_loopback(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def proxy_for(url: str, environ: Mapping[str, str]) -> Proxy | None:
    """The proxy for calls to ``url``, or None to reach it directly.

    A UsageError names the variable whose proxy cannot be used (a scheme other than
    http://, no host), without repeating its value: it may hold a password.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if not host or _is_loopback(host):
        return None
    found = _setting(environ, f"{parts.scheme}_proxy") or _setting(environ, "all_proxy")
    if found is None:
        return None
    variable, value = found
    no_proxy = _setting(environ, "no_proxy")
    if no_proxy is not None and _bypassed(host, parts.port, no_proxy[1]):
        return None
    if "://" not in value:
        value = f"http://{value}"
    try:
        proxy = urllib.parse.urlsplit(value)
        port = proxy.port
    except ValueError:
        raise UsageError(f"{variable} is not a valid proxy URL (check its host and port)") from None
    if proxy.scheme != "http" or not proxy.hostname:
        raise UsageError(
            f"{variable} must name an http:// proxy (host and port, e.g. "
            "http://proxy.example:3128); other kinds of proxy are not supported"
        )
    name = f"[{proxy.hostname}]" if ":" in proxy.hostname else proxy.hostname
    shown = f"http://{name}" + ("" if port is None else f":{port}")
    url = urllib.parse.urlunsplit(proxy._replace(path="", query="", fragment=""))
    return Proxy(url=url, shown=shown, variable=variable)


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` (its text) names ``host`` (and ``port``)."""
    host = host.lower().rstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.replace(" ", ",").split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        name, entry_port = entry, ""
        if _has_port(entry):
            name, _, entry_port = entry.rpartition(":")
        if entry_port and (port is None or entry_port != str(port)):
            continue
        name = name.strip("[]").removeprefix("*").removeprefix(".").rstrip(".")
        if address is not None:
            try:
                if address in ipaddress.ip_network(name, strict=False):
                    return True
            except ValueError:
                pass
            continue
        if host == name or host.endswith("." + name):
            return True
    return False


def _has_port(entry: str) -> bool:
    """``host:port`` or ``[v6]:port``, but not a bare IPv6 address."""
    if entry.startswith("["):
        return "]:" in entry
    return entry.count(":") == 1
