"""Which requests may reach the app: the Host they name, the Origin they come from, the site that sent them.

A server on 127.0.0.1 is reachable from every web page its user opens. Two ways in, closed here:
- DNS rebinding: a page at ``http://attacker.example:8000`` re-resolves its own name to 127.0.0.1 and then
  reads this server as its own origin. Its requests carry ``Host: attacker.example:8000``, so only Host
  values that name this server are served: the loopback names with the bound port, the bound address,
  and names given with ``--allowed-host``. An IP-literal Host cannot be rebound (the attacker does not
  own the address), which is why a server bound to all interfaces (``0.0.0.0``, token required) takes
  any IP literal with its port.
- Cross-site requests: a page elsewhere can POST a form here, or load ``<img src>`` of an upload, without
  reading the answer. A browser labels them: an ``Origin`` that is not this server (``null`` included)
  and ``Sec-Fetch-Site: cross-site`` / ``same-site`` (another port of localhost is the same site) are
  refused on every route, except a plain navigation to the page itself, so a link to the app still works.
Clients that send neither header (curl, scripts) are not browsers and pass.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
WILDCARDS = frozenset({"0.0.0.0", "::", "[::]"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def split_host(value: str, default_port: int | None = 80) -> tuple[str, int | None] | None:
    """``name[:port]`` or ``[v6][:port]`` lowercased, as (name, port); None when it is not a host."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[: end + 1], value[end + 1 :]
        try:
            ipaddress.IPv6Address(name[1:-1])
        except ValueError:
            return None
    else:
        name, colon, port_text = value.partition(":")
        rest = colon + port_text
    if not name or any(c in name for c in "/\\@?# \t") or name.endswith("."):
        return None
    if not rest:
        return name, default_port
    port_text = rest[1:]
    if not rest.startswith(":") or not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
        return None
    return name, int(port_text)


def bracketed(address: str) -> str:
    """An address as it appears in a Host header: IPv6 in brackets."""
    return f"[{address}]" if ":" in address and not address.startswith("[") else address.lower()


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HostPolicy:
    """The Host and Origin values one server accepts. ``extra``: ``--allowed-host`` entries, ``name`` (any
    port) or ``name:port``."""

    bound: str  # the address the socket is bound to (--host)
    port: int  # the port it got
    extra: tuple[str, ...] = ()

    def accepts(self, name: str, port: int | None) -> bool:
        for entry in self.extra:
            want = split_host(entry, default_port=None)
            if want is not None and want[0] == name and want[1] in (None, port):
                return True
        if port != self.port:
            return False
        if name == bracketed(self.bound):
            return True
        if is_loopback(self.bound):
            return name in LOOPBACK_NAMES
        if self.bound in WILDCARDS:
            return name == "localhost" or _is_ip_literal(name)
        return False

    def host_refusal(self, host: str | None) -> str | None:
        """Why a request with this Host header is refused; None when it is accepted."""
        if host is None:
            return "a request without a Host header is refused"
        parsed = split_host(host)
        if parsed is not None and self.accepts(*parsed):
            return None
        hint = f"start it with --allowed-host {parsed[0]} to serve that name" if parsed else "--allowed-host adds names"
        return f"Host {host!r} does not name this server ({self.describe()}); refused against DNS rebinding ({hint})"

    def origin_refusal(self, origin: str | None, host: str) -> str | None:
        """Why a request with this Origin header is refused (the Host already accepted); None when accepted."""
        if origin is None:
            return None
        scheme, sep, netloc = origin.strip().lower().partition("://")
        if sep and scheme in _DEFAULT_PORTS and netloc:
            if netloc == host.strip().lower():
                return None
            parsed = split_host(netloc, default_port=_DEFAULT_PORTS[scheme])
            if parsed is not None and self.accepts(*parsed):
                return None
        return f"a request from the web page at Origin {origin!r} is refused: only this server's own page may call it"

    def describe(self) -> str:
        if self.bound in WILDCARDS:
            names = f"an IP address or localhost with port {self.port}"
        elif is_loopback(self.bound):
            names = f"localhost, 127.0.0.1 or [::1] with port {self.port}"
        else:
            names = f"{bracketed(self.bound)}:{self.port}"
        return names + (f", or {', '.join(self.extra)}" if self.extra else "")


def site_refusal(method: str, path: str, fetch_site: str | None, fetch_mode: str | None) -> str | None:
    """A browser's ``Sec-Fetch-Site`` of another site: refused, but for navigating to the page itself."""
    if fetch_site not in ("cross-site", "same-site"):
        return None
    if method in ("GET", "HEAD") and path == "/" and fetch_mode == "navigate":
        return None
    return f"a {fetch_site} request is refused: only this server's own page may call it"
