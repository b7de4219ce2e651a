"""The dashboard's HTTP API, served by the gateway (:func:`register` adds the routes).

Support-lead endpoints (a session whose agent has role ``lead``; else 401/403):

- ``GET  /dashboard``                       the dashboard page (it logs in itself);
- ``GET  /api/analytics/summary``           every figure for ``?from=YYYY-MM-DD&to=YYYY-MM-DD``
  (UTC days, inclusive; default the last 30 days) and optional ``&topic=<intent>``;
- ``GET  /api/analytics/conversations``     one row per conversation of the period (outcome flags);
- ``POST /api/analytics/replay``            ``{"policy": "<candidate escalation_policy.yml>"}``:
  the conversations of the period that policy would have escalated differently (shadow mode);
- ``GET  /api/analytics/policy``            the escalation policy in force, as YAML text;
- ``GET  /api/analytics/nlu-candidates.yml`` fallback and handoff messages as Rasa NLU YAML.

Agent endpoints (any agent session):

- ``GET  /api/analytics/labels``            the label choices and this agent's handled tickets
  still without a label;
- ``POST /api/tickets/{ticket_id}/label``   ``{"label": "correct" | "bot_should_have_solved" |
  "too_late" | "new_topic"}``: one click; allowed for the agent who handled the ticket, or a lead.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.analytics import labels as label_store
from bot.analytics import learning, measures
from bot.analytics.events import LABELS
from bot.analytics.period import parse_period
from bot.analytics.records import ConversationRecord
from bot.analytics.replay import replay
from bot.analytics.report_cache import ReportCache, thread_collector
from bot.analytics.summary import summarize
from bot.escalation import Policy, PolicyError, load_policy, parse_policy
from bot.web.agent_api import agent_session
from bot.web.auth import Agent
from bot.web.errors import ApiError, bad_request, forbidden
from bot.web.gateway import Gateway
from bot.web.inputs import read_json

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
MAX_POLICY_CHARS = 60_000
MAX_PERIOD_DAYS = 3660  # ten years: a longer period is a typo, and costly to compute
routes = web.RouteTableDef()
# The gateway's report cache (bot/analytics/report_cache.py), made at the first dashboard request.
REPORTS = web.AppKey("analytics_reports", dict)


async def lead_session(request: web.Request) -> tuple[Gateway, Agent]:
    gateway, agent = await agent_session(request)
    if agent.role != "lead":
        raise forbidden("the dashboard is for support leads")
    return gateway, agent


def _period(request: web.Request) -> tuple[float, float, str | None]:
    try:
        start, end = parse_period(request.query.get("from"), request.query.get("to"))
    except ValueError as error:
        raise bad_request(str(error)) from error
    except OverflowError as error:  # a day so far out that the period leaves the calendar
        raise bad_request("dates must lie between 0001-01-01 and 9999-12-31") from error
    if end - start > MAX_PERIOD_DAYS * 86400:
        raise bad_request(f"a period may span at most {MAX_PERIOD_DAYS} days")
    topic = (request.query.get("topic") or "").strip() or None
    return start, end, topic


def _reports(request: web.Request, gateway: Gateway) -> ReportCache:
    holder: dict[str, ReportCache] = request.app[REPORTS]
    if "cache" not in holder:
        holder["cache"] = ReportCache(
            thread_collector(gateway.redis, gateway.settings.queue_namespace),
            ttl_seconds=gateway.settings.analytics_cache_seconds,
            workers=gateway.settings.analytics_workers,
        )
    return holder["cache"]


async def _records(request: web.Request, gateway: Gateway) -> list[ConversationRecord]:
    """Every conversation's record, computed off the event loop (and reused briefly)."""
    return await _reports(request, gateway).records()


@routes.get("/dashboard")
async def dashboard_page(_request: web.Request) -> web.StreamResponse:
    return web.FileResponse(
        STATIC / "dashboard.html", headers={"Content-Type": "text/html; charset=utf-8"}
    )


@routes.get("/api/analytics/summary")
async def summary(request: web.Request) -> web.Response:
    gateway, _ = await lead_session(request)
    start, end, topic = _period(request)
    reports = _reports(request, gateway)
    figures = await reports.run(summarize, await reports.records(), start, end, topic)
    return web.json_response(figures)


def conversation_row(record: ConversationRecord) -> dict[str, Any]:
    return {
        "conversation_id": record.conversation_id,
        "started_at": record.started_at,
        "topic": record.topic,
        "customer_messages": len(record.messages),
        "bot_only": record.bot_only,
        "contained": measures.contained(record),
        "falsely_contained": measures.falsely_contained(record),
        "left_mid_problem": record.left_mid_problem,
        "handoff": record.handoff_requested,
        "reason_codes": list(record.reason_codes),
        "tickets": [
            {
                "ticket_id": t.ticket_id,
                "state": t.state,
                "topic": t.topic,
                "disposition": t.disposition,
                "label": t.label,
                "handled": t.handled,
                "first_reply_seconds": t.first_reply_seconds,
                "handle_seconds": t.handle_seconds,
            }
            for t in record.tickets
        ],
        "fallbacks": record.fallbacks,
        "didnt_help": record.didnt_help,
        "rating": record.rating,
        "survey_offered": record.survey_offered,
    }


@routes.get("/api/analytics/conversations")
async def conversations(request: web.Request) -> web.Response:
    gateway, _ = await lead_session(request)
    start, end, topic = _period(request)
    reports = _reports(request, gateway)
    records = await reports.run(measures.in_period, await reports.records(), start, end, topic)
    return web.json_response({"conversations": [conversation_row(r) for r in records]})


def _candidate_policy(text: str) -> Policy:
    try:
        return parse_policy(text)
    except PolicyError as error:
        raise bad_request(f"the proposed policy: {error}") from error


@routes.post("/api/analytics/replay")
async def replay_policy(request: web.Request) -> web.Response:
    gateway, _ = await lead_session(request)
    start, end, topic = _period(request)
    body = await read_json(request)
    text = body.get("policy")
    if not isinstance(text, str) or not text.strip():
        raise bad_request("'policy' (the candidate policy as YAML text) is required")
    if len(text) > MAX_POLICY_CHARS:
        raise ApiError(
            413, "too_large", f"the policy may have at most {MAX_POLICY_CHARS} characters"
        )
    candidate = _candidate_policy(text)
    try:
        current = await asyncio.to_thread(load_policy, gateway.settings.escalation_policy)
    except PolicyError as error:
        raise ApiError(500, "policy_unreadable", str(error)) from error
    reports = _reports(request, gateway)
    records = await reports.run(measures.in_period, await reports.records(), start, end, topic)
    result = await reports.run(replay, records, current, candidate)
    return web.json_response(result.as_dict())


@routes.get("/api/analytics/policy")
async def current_policy(request: web.Request) -> web.Response:
    gateway, _ = await lead_session(request)
    text = await asyncio.to_thread(Path(gateway.settings.escalation_policy).read_text, "utf-8")
    return web.Response(text=text, content_type="application/yaml")


@routes.get("/api/analytics/nlu-candidates.yml")
async def nlu_candidates(request: web.Request) -> web.Response:
    gateway, _ = await lead_session(request)
    start, end, topic = _period(request)
    records = measures.in_period(await _records(request, gateway), start, end, topic)
    text = await _reports(request, gateway).run(
        lambda: learning.to_yaml(learning.candidates(records))
    )
    return web.Response(
        text=text,
        content_type="application/yaml",
        headers={"Content-Disposition": 'attachment; filename="nlu_candidates.yml"'},
    )


def _handled_by(ticket: dict[str, Any], agent: Agent) -> bool:
    return agent.login in (ticket.get("agent_id"), ticket.get("last_agent_id"))


@routes.get("/api/analytics/labels")
async def label_choices(request: web.Request) -> web.Response:
    gateway, agent = await agent_session(request)
    pending = await label_store.pending_for(
        gateway.redis, gateway.settings.queue_namespace, agent.login
    )
    return web.json_response(
        {"labels": [{"value": k, "title": v} for k, v in LABELS.items()], "pending": pending[:20]}
    )


@routes.post("/api/tickets/{ticket_id}/label")
async def label_ticket(request: web.Request) -> web.Response:
    gateway, agent = await agent_session(request)
    ticket_id = request.match_info["ticket_id"]
    body = await read_json(request)
    label = body.get("label")
    if label not in LABELS:
        raise bad_request(f"'label' must be one of {', '.join(LABELS)}")
    ticket = await gateway.desk.ticket(ticket_id)
    if agent.role != "lead" and not _handled_by(ticket, agent):
        raise forbidden("only the agent who handled the ticket (or a lead) can label it")
    event = await label_store.record_label(
        gateway.redis,
        gateway.settings.queue_namespace,
        ticket_id=ticket_id,
        conversation_id=str(ticket.get("conversation_id") or ""),
        label=label,
        agent_id=agent.login,
    )
    _reports(request, gateway).invalidate()
    return web.json_response(
        {"ticket_id": ticket_id, "label": event.label, "title": LABELS[event.label], "at": event.at}
    )


async def _close_reports(app: web.Application) -> None:
    cache = app[REPORTS].pop("cache", None)
    if cache is not None:
        cache.close()


def register(app: web.Application) -> None:
    """Add the dashboard page and the analytics API to the gateway's application."""
    app.router.add_routes(routes)
    app[REPORTS] = {}
    app.on_cleanup.append(_close_reports)
