"""Who the client is: the socket peer, or what a trusted reverse proxy says.

``X-Forwarded-For``, ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` are believed only when the
TCP peer is one of ``TRUSTED_PROXIES`` (addresses or CIDRs, comma-separated; empty by default).
Then ``request.remote`` becomes the nearest address in ``X-Forwarded-For`` that is not itself a
trusted proxy (read from the right, so a client cannot forge its way in by prepending
addresses; every ``X-Forwarded-For`` line counts, as HAProxy adds its own line after the
client's), and ``request.scheme``/``request.host`` the forwarded ones, so the gateway's own
origin (Origin checks, CSP) is the public one. From any other peer these headers are ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.web.security import HOST

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def parse_networks(value: str) -> tuple[Network, ...]:
    """``"10.0.0.1, 192.168.0.0/16, ::1"`` as networks; a malformed entry raises ValueError."""
    networks = []
    for item in value.split(","):
        item = item.strip()
        if item:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError as error:
                raise ValueError(f"TRUSTED_PROXIES: {item!r} is no address or CIDR") from error
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None, networks) -> bool:
    return address is not None and any(address in network for network in networks)


def forwarded_client(peer: str | None, forwarded_for: str, networks: tuple[Network, ...]) -> str:
    """The client address: the peer unless it is a trusted proxy, else the right-most
    ``X-Forwarded-For`` entry that is not a trusted proxy (a malformed entry stops the walk)."""
    if not peer or not _trusted(_address(peer), networks):
        return peer or "unknown"
    client = peer
    for hop in reversed([h for h in forwarded_for.split(",") if h.strip()]):
        address = _address(hop)
        if address is None:
            break
        client = str(address)
        if not _trusted(address, networks):
            break
    return client


def forwarded_for(request: web.Request) -> str:
    """Every ``X-Forwarded-For`` line of the request, in order, as one list. HAProxy's
    ``option forwardfor`` adds its own line after the client's instead of appending to it: read
    alone, the first line is whatever the client wrote, and a client could pick the address its
    limits are counted against (or get another address limited)."""
    return ",".join(request.headers.getall("X-Forwarded-For", ()))


def forwarded_headers(networks: tuple[Network, ...]) -> Callable:
    """Middleware: rewrite remote/scheme/host from a trusted proxy's headers (no-op without)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not networks or not _trusted(_address(request.remote or ""), networks):
            return await handler(request)
        changes: dict[str, str] = {
            "remote": forwarded_client(request.remote, forwarded_for(request), networks)
        }
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        if proto in ("http", "https"):
            changes["scheme"] = proto
        host = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
        if host and HOST.fullmatch(host):
            changes["host"] = host
        return await handler(request.clone(**changes))

    return middleware
