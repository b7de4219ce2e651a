"""Request-level security of the gateway: origins, bearer tokens, response headers.

* **Origins**: browsers send ``Origin`` on WebSocket upgrades and cross-site requests. Only the
  gateway's own origin and those in ``WEB_ALLOWED_ORIGINS`` are accepted (403 otherwise); an
  allowed foreign origin gets CORS headers so the widget works when embedded on its pages.
* **Tokens** travel as ``Authorization: Bearer``, never in cookies, so other sites cannot ride on
  a session (no CSRF), and never in URLs, so they stay out of logs.
* **Headers**: a Content-Security-Policy without inline scripts on our pages, whose
  ``connect-src`` is the gateway's own origin only (``'self'`` plus its exact ``ws://``/``wss://``
  origin, which ``'self'`` does not cover in every browser), ``nosniff``, no framing of the
  console, no referrer. The origin is the request's scheme and Host, or a trusted proxy's
  forwarded ones (:mod:`bot.web.proxy`).
"""

from __future__ import annotations

import re

from aiohttp import web

from bot.web.errors import forbidden, unauthorized
from bot.web.inputs import media_type

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src {connect}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(:\d{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?")


def content_security_policy(request: web.Request) -> str:
    """The CSP for a page of this gateway: connections to its own origin (HTTP and WebSocket)."""
    connect = "'self'"
    if HOST.fullmatch(request.host or ""):
        ws_scheme = "wss" if request.scheme == "https" else "ws"
        connect += f" {ws_scheme}://{request.host}"
    return CSP.format(connect=connect)


def parse_origins(value: str) -> frozenset[str]:
    return frozenset(o.strip().rstrip("/") for o in value.split(",") if o.strip())


def own_origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def origin_allowed(request: web.Request, allowed: frozenset[str]) -> bool:
    """True when the request has no Origin (not a browser) or an allowed one."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    origin = origin.rstrip("/")
    return origin == own_origin(request) or origin in allowed


def require_origin(request: web.Request, allowed: frozenset[str]) -> None:
    if not origin_allowed(request, allowed):
        raise forbidden(f"origin {request.headers.get('Origin')!r} is not allowed")


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("send the token as 'Authorization: Bearer <token>'")
    return token.strip()


def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if media_type(response.headers.get("Content-Type")) == "text/html":
        response.headers.setdefault("Content-Security-Policy", content_security_policy(request))
        response.headers.setdefault("X-Frame-Options", "DENY")
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")


def add_cors_headers(
    request: web.Request, response: web.StreamResponse, allowed: frozenset[str]
) -> None:
    origin = request.headers.get("Origin", "").rstrip("/")
    if origin and origin != own_origin(request) and origin in allowed:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
