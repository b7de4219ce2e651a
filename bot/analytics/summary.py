"""The figures of one period, JSON-ready: what the dashboard API serves and the report prints.

:func:`summarize` applies every measure of :mod:`bot.analytics.measures` to the conversations that
started in the period (optionally only those raising one topic), adds a per-day series, the
per-intent table, the escalation-label rates and the estimated satisfaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from bot.analytics import measures
from bot.analytics.estimate import estimate
from bot.analytics.period import days
from bot.analytics.records import ConversationRecord

INTENT_ROWS = 40


def _daily(records: Sequence[ConversationRecord], start: float, end: float) -> list[dict]:
    by_day: dict[str, list[ConversationRecord]] = {d.isoformat(): [] for d in days(start, end)}
    for record in records:
        by_day.setdefault(measures.day_of(record.started_at).isoformat(), []).append(record)
    series = []
    for day, group in sorted(by_day.items()):
        paths = measures.csat_by_path(group)
        series.append(
            {
                "day": day,
                "conversations": len(group),
                "containment": measures.containment(group).as_dict(),
                "false_containment": measures.false_containment(group).as_dict(),
                "escalation": measures.escalation_rate(group).as_dict(),
                "csat_bot_only": paths["bot_only"].mean,
                "csat_agent_handled": paths["agent_handled"].mean,
                "csat_coverage": measures.csat_coverage(group).as_dict(),
                "abandonment_while_waiting": measures.abandonment_while_waiting(group).as_dict(),
                "first_agent_reply_median": measures.time_to_first_agent_reply(group).median,
                "agent_handle_time_median": measures.agent_handle_time(group).median,
            }
        )
    return series


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


def summarize(
    everything: Sequence[ConversationRecord],
    start: float,
    end: float,
    topic: str | None = None,
) -> dict:
    """Every figure for conversations started in ``[start, end)`` (and raising ``topic``)."""
    records = measures.in_period(everything, start, end, topic)
    paths = measures.csat_by_path(records)
    estimated = estimate(records, training=measures.in_period(everything, None, end))
    period = measures.in_period(everything, start, end)
    topics = sorted(
        {t for r in period for t in r.topics}
        | {t.topic for r in period for t in r.tickets if t.topic}
    )
    return {
        "period": {"from": _iso(start), "to": _iso(end), "topic": topic},
        "topics": topics,
        "conversations": measures.conversations(records),
        "containment": measures.containment(records).as_dict(),
        "false_containment": measures.false_containment(records).as_dict(),
        "escalation": measures.escalation_rate(records).as_dict(),
        "escalation_reasons": {
            code: ratio.as_dict() for code, ratio in measures.escalation_reasons(records).items()
        },
        "time_to_first_agent_reply": measures.time_to_first_agent_reply(records).__dict__,
        "agent_handle_time": measures.agent_handle_time(records).__dict__,
        "abandonment_while_waiting": measures.abandonment_while_waiting(records).as_dict(),
        "csat": {path: group.as_dict() for path, group in paths.items()},
        "csat_coverage": measures.csat_coverage(records).as_dict(),
        "durable_resolution": measures.durable_resolution(records, everything).as_dict(),
        "escalation_labels": {
            name: ratio.as_dict() for name, ratio in measures.escalation_labels(records).items()
        },
        "estimated_satisfaction": estimated.as_dict(),
        "per_intent": [row.as_dict() for row in measures.per_intent(records)[:INTENT_ROWS]],
        "daily": _daily(records, start, end),
    }
