"""The action server's Prometheus metrics and per-run log context.

:func:`instrument` adds to rasa_sdk's Sanic app:

* ``GET /metrics`` (``prometheus-client`` text format), behind the same token as every other
  route but ``/health`` (:mod:`bot.runtime.action_server`): metrics reveal traffic, and the only
  caller that needs them, Prometheus, can send the token as a query parameter
  (``params: {token: [...]}`` in its scrape config);
* around each ``POST /webhook``: the tracker's ``sender_id`` bound to
  :data:`bot.logs.CONVERSATION_ID` for the run (every log line of the action carries it), the
  run time in ``support_action_seconds{action}`` and the run in
  ``support_action_runs_total{action,outcome}``.

The actions count the handoffs they open (``support_action_handoffs_total{reason}``, one per
reason code of the ticket) and their errors by kind (``support_action_errors_total{kind}``).
Counters are per process: rasa_sdk runs one Sanic worker unless ``ACTION_SERVER_SANIC_WORKERS``
says otherwise, and each action server (or worker) is scraped on its own; Prometheus sums them.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.logs import CONVERSATION_ID

log = logging.getLogger(__name__)

WEBHOOK = "/webhook"
ACTION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
ACTION_SECONDS = Histogram(
    "support_action_seconds", "Run time of one action call", ["action"], buckets=ACTION_BUCKETS
)
ACTION_RUNS = Counter("support_action_runs", "Action calls by outcome", ["action", "outcome"])
HANDOFFS = Counter("support_action_handoffs", "Tickets the bot opened, per reason code", ["reason"])
ERRORS = Counter("support_action_errors", "Errors in the action server, by kind", ["kind"])


def _webhook_fields(request: Request) -> tuple[str, str | None]:
    """(action name, conversation id) of a webhook call; ``unknown`` / None when unreadable."""
    try:
        body = request.json
    except Exception:  # a malformed body: rasa_sdk answers it with its own 400
        return "unknown", None
    if not isinstance(body, dict):
        return "unknown", None
    action = body.get("next_action")
    tracker = body.get("tracker") if isinstance(body.get("tracker"), dict) else {}
    sender = body.get("sender_id") or tracker.get("sender_id")
    name = action if isinstance(action, str) and len(action) <= 80 else "unknown"
    return name, sender[:64] if isinstance(sender, str) and sender else None


def instrument(app: Sanic) -> None:
    """Serve ``/metrics`` on `app` and time, count and log-tag every webhook call."""

    @app.middleware("request")
    async def start_run(request: Request) -> None:
        if request.path != WEBHOOK or request.method != "POST":
            return
        action, conversation_id = _webhook_fields(request)
        request.ctx.action = action
        request.ctx.conversation_id = conversation_id
        request.ctx.log_token = CONVERSATION_ID.set(conversation_id)
        request.ctx.started = time.perf_counter()

    @app.middleware("response")
    async def end_run(request: Request, answer: HTTPResponse) -> None:
        started = getattr(request.ctx, "started", None)
        if started is None:
            return
        seconds = time.perf_counter() - started
        action = request.ctx.action
        outcome = "ok" if answer.status < 400 else f"http_{answer.status}"
        ACTION_SECONDS.labels(action).observe(seconds)
        ACTION_RUNS.labels(action, outcome).inc()
        if answer.status >= 400:
            ERRORS.labels("action_failed" if answer.status >= 500 else "bad_request").inc()
        log.info(
            "action %s outcome=%s seconds=%.3f",
            action,
            outcome,
            seconds,
            extra={"conversation_id": request.ctx.conversation_id},
        )
        CONVERSATION_ID.reset(request.ctx.log_token)

    @app.get("/metrics")
    async def metrics(_request: Request) -> HTTPResponse:
        return response.raw(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
