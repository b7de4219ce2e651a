"""A known sequence of events with known answers, shared by the analytics tests.

Eight conversations on 2026-11-02 (UTC) whose outcomes are worked out by hand in the comments.
"""

from __future__ import annotations

from datetime import datetime, timezone

from bot.analytics.events import (
    AgentMessage,
    CustomerMessage,
    EscalationLabel,
    HelpAnswer,
    Rating,
    SurveyOffered,
    TicketChange,
    TurnDecision,
)

DAY = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc).timestamp()


def msg(cid, t, intent, text="...", sentiment=0.0, candidate=None, customer=None, conf=0.9):
    return CustomerMessage(
        DAY + t, cid, text, intent, conf, candidate, sentiment, customer or f"cust-{cid}"
    )


def ticket(cid, t, state, tid=None, **kw):
    return TicketChange(DAY + t, cid, tid or f"T-{cid}", state, **kw)


def scenario() -> list:
    return [
        # A: routine question, "yes that helped", thanks, rated 5 -> contained, not false.
        msg("A", 0, "greet", "hi"),
        msg("A", 10, "card_arrival", "where is my card"),
        HelpAnswer(DAY + 20, "A", True, "card_arrival"),
        msg("A", 25, "thanks", "thanks!", 0.5),
        SurveyOffered(DAY + 26, "A"),
        Rating(DAY + 30, "A", 5),
        # B: answer did not help, customer leaves -> not contained (left mid-problem), false.
        msg("B", 100, "exchange_rate", "what rate do you use"),
        HelpAnswer(DAY + 110, "B", False, "exchange_rate"),
        # C: fallback then leaves -> left mid-problem, false containment.
        msg("C", 200, "nlu_fallback", "hmm my thing", candidate="card_arrival", conf=0.2),
        # D: answered, but the last message is negative -> contained, falsely.
        msg("D", 300, "exchange_rate", "exchange rate?"),
        msg("D", 320, "exchange_rate", "your rates are a rip-off", -0.6),
        # E: helped, rated 1 -> contained, falsely (low rating).
        msg("E", 400, "card_arrival", "card not here"),
        HelpAnswer(DAY + 410, "E", True, "card_arrival"),
        SurveyOffered(DAY + 411, "E"),
        Rating(DAY + 420, "E", 1, "slow"),
        # F: sensitive topic, handed off, agent replies after 45 s, resolves; rated 4.
        msg("F", 500, "compromised_card", "someone used my card", -0.4),
        TurnDecision(DAY + 501, "F", "handoff", ("sensitive_topic",)),
        ticket("F", 502, "queued", reason_codes=("sensitive_topic",), priority=1, topic="cards"),
        ticket("F", 532, "assigned", agent_id="ann"),
        AgentMessage(DAY + 547, "F", "T-F", "ann"),
        ticket("F", 802, "resolved", disposition="card_blocked"),
        EscalationLabel(DAY + 810, "F", "T-F", "correct", "ann"),
        SurveyOffered(DAY + 803, "F"),
        Rating(DAY + 805, "F", 4),
        # G: explicit request, customer leaves the queue after 120 s -> abandoned while waiting.
        msg("G", 600, "request_human", "agent please"),
        TurnDecision(DAY + 601, "G", "handoff", ("explicit_request",)),
        ticket("G", 602, "queued", reason_codes=("explicit_request",), priority=2),
        ticket("G", 722, "abandoned"),
        # H: two fallbacks, a person offered, handed off, agent hands back after 140 s.
        msg("H", 700, "nlu_fallback", "transfer thing", candidate="transfer_timing", conf=0.3),
        msg("H", 710, "nlu_fallback", "the transfer", candidate="transfer_timing", conf=0.3),
        TurnDecision(DAY + 711, "H", "offer", ("repeated_fallback",)),
        msg("H", 715, "affirm", "/affirm"),
        TurnDecision(DAY + 716, "H", "handoff", ("repeated_fallback",)),
        ticket("H", 717, "queued", reason_codes=("repeated_fallback",), priority=2),
        ticket("H", 777, "assigned", agent_id="bob"),
        AgentMessage(DAY + 807, "H", "T-H", "bob"),
        AgentMessage(DAY + 830, "H", "T-H", "bob"),
        ticket("H", 917, "returned_to_bot", disposition="answered"),
        EscalationLabel(DAY + 920, "H", "T-H", "bot_should_have_solved", "bob"),
    ]
