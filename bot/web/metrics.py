"""The gateway's Prometheus metrics (``prometheus-client``) on ``GET /metrics``.

* ``support_gateway_turns_total{outcome}``: customer messages (``POST .../messages``) by outcome
  (``ok`` or the error code answered, e.g. ``rasa_unavailable``, ``rate_limited``).
* ``support_gateway_turn_seconds``: their round trip through the gateway (histogram).
* ``support_gateway_handoffs_total{reason}``: tickets the gateway opened itself (the
  bot-unavailable path, reason ``bot_unavailable``); the action server counts the bot's own.
* ``support_gateway_errors_total{kind}``: every error answered (``rasa_unavailable``,
  ``redis_error``, ``rate_limited``, ``bad_request``, ``unauthorized`` ...), plus Rasa failures
  the gateway absorbed by answering without the bot.
* ``support_gateway_turns_in_flight``, ``support_gateway_turns_waiting``: this gateway's bot
  turns at Rasa and in its admission queue (:mod:`bot.web.admission`), read at the scrape.
* ``support_queue_waiting{topic}``, ``support_queue_oldest_wait_seconds``,
  ``support_queue_open``, ``support_agents_online``: read from the queue on each scrape (one
  pipeline of ZCARDs, one ZRANGE per topic and one ticket read), so they are never stale.

The counters are this process's: each gateway exposes its own and Prometheus sums them across
gateways (the queue gauges are the same in every gateway: take ``max``, not ``sum``).

Who may read: metrics reveal traffic. With ``METRICS_TOKEN`` set, a scrape must send
``Authorization: Bearer <token>``; without it, only loopback clients are answered (the client
address after :mod:`bot.web.proxy`, so a request relayed by a trusted proxy counts as its
original client). Anything else gets a 401/403 (docs/security.md).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from redis.asyncio import Redis

from bot.config import Settings
from bot.logs import CONVERSATION_ID
from bot.queue import HandoffQueue, open_queue
from bot.web.errors import error_response
from bot.web.limits import REPEAT

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TURN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32)
TURNS = Counter("support_gateway_turns", "Customer messages handled, by outcome", ["outcome"])
TURN_SECONDS = Histogram(
    "support_gateway_turn_seconds", "Gateway round trip of a customer message", buckets=TURN_BUCKETS
)
HANDOFFS = Counter("support_gateway_handoffs", "Tickets opened by the gateway", ["reason"])
ERRORS = Counter("support_gateway_errors", "Errors answered or absorbed, by kind", ["kind"])
WAITING = Gauge("support_queue_waiting", "Tickets waiting in the queue", ["topic"])
OLDEST_WAIT = Gauge("support_queue_oldest_wait_seconds", "Age of the oldest waiting ticket")
OPEN = Gauge("support_queue_open", "Tickets open (waiting or with an agent)")
AGENTS_ONLINE = Gauge("support_agents_online", "Agents online")
TURNS_IN_FLIGHT = Gauge("support_gateway_turns_in_flight", "Bot turns this gateway has at Rasa")
TURNS_WAITING = Gauge(
    "support_gateway_turns_waiting", "Bot turns waiting in this gateway's admission queue"
)

# error codes of bot.web.errors mapped to a small, fixed set of kinds (bounded label values)
KINDS = {
    "rasa_unavailable": "rasa_unavailable",
    "redis_unavailable": "redis_error",
    "too_many_requests": "rate_limited",
    "rate_limited": "rate_limited",
    "bad_request": "bad_request",
    "unauthorized": "unauthorized",
    "forbidden": "forbidden",
    "not_found": "not_found",
    "conflict": "conflict",
    "too_large": "too_large",
    "internal_error": "internal_error",
    "turn_pending": "turn_pending",  # the bot took longer than TURN_WAIT_SECONDS (503, retry)
    "busy": "busy",
    "too_many_attempts": "rate_limited",
    "unavailable": "unavailable",
}
BY_STATUS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found"}
BY_STATUS |= {409: "conflict", 413: "too_large", 415: "bad_request", 422: "bad_request"}
BY_STATUS |= {429: "rate_limited"}


def is_turn(request: web.Request) -> bool:
    return (
        request.method == "POST"
        and request.path.endswith("/messages")
        and (request.path.startswith("/api/conversations/"))
    )


def error_kind(response: web.StreamResponse) -> str:
    """The kind of error `response` answers (its JSON error code, else its status)."""
    if response.status == 429:  # every 429's code is a rate limit's: no JSON to parse (a flood)
        return "rate_limited"
    code = ""
    body = getattr(response, "body", None)
    if isinstance(body, bytes) and body[:1] == b"{":
        try:
            code = str(json.loads(body).get("error", {}).get("code", ""))
        except (ValueError, AttributeError):
            code = ""
    if code in KINDS:
        return KINDS[code]
    status = response.status
    return BY_STATUS.get(status, "server_error" if status >= 500 else "client_error")


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind the request's conversation id to its log lines; count and time turns and errors.
    Goes outside ``json_errors`` in the middleware list, so it sees the answered error."""
    conversation_id = (request.match_info.get("conversation_id") or "")[:64] or None
    token = CONVERSATION_ID.set(conversation_id)
    started = time.perf_counter()
    try:
        response = await handler(request)
    finally:
        CONVERSATION_ID.reset(token)
    if response.status >= 400:
        ERRORS.labels(error_kind(response)).inc()
    if is_turn(request):
        seconds = time.perf_counter() - started
        outcome = "ok" if response.status < 400 else error_kind(response)
        TURNS.labels(outcome).inc()
        TURN_SECONDS.observe(seconds)
        if response.get(REPEAT):  # a flood's repeats are counted, not logged line by line
            return response
        log.info(
            "turn outcome=%s status=%s seconds=%.3f",
            outcome,
            response.status,
            seconds,
            extra={"conversation_id": conversation_id},
        )
    return response


def _loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def allowed(request: web.Request, token: str | None) -> bool:
    """A bearer `token` when one is configured, else a loopback client."""
    if not token:
        return _loopback(request.remote)
    provided = request.headers.get("Authorization", "")
    scheme, _, value = provided.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.encode(), token.encode())


async def refresh_queue_gauges(queue: HandoffQueue) -> None:
    """Set the queue gauges from the queue now."""
    stats = await queue.stats()
    WAITING.clear()
    for topic, count in stats["waiting"].items():
        WAITING.labels(topic).set(count)
    OPEN.set(stats["open"])
    AGENTS_ONLINE.set(stats["agents_online"])
    waiting_ids = await queue.queued()
    oldest = min(waiting_ids, key=_sequence, default=None)
    age = 0.0
    if oldest is not None:
        ticket = await queue.get(oldest)
        age = max(0.0, time.time() - ticket.created_at)
    OLDEST_WAIT.set(age)


def _sequence(ticket_id: str) -> tuple[int, str]:
    digits = ticket_id[1:]
    return (int(digits), ticket_id) if digits.isdigit() else (1 << 62, ticket_id)


def register(app: web.Application, redis: Redis, settings: Settings) -> None:
    """Serve ``GET /metrics`` on `app` (with :func:`observe` among its middlewares)."""
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    queue = open_queue(redis, settings)

    async def metrics(request: web.Request) -> web.Response:
        if not allowed(request, token):
            if token:
                return error_response(401, "unauthorized", "metrics need the metrics bearer token")
            return error_response(403, "forbidden", "metrics are served to loopback clients only")
        await refresh_queue_gauges(queue)
        body = generate_latest()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", metrics)
