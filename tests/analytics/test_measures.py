"""Each measure, computed from the known event sequence in ``scenario.py``, gives the known answer."""

from __future__ import annotations

from dataclasses import replace

from bot.analytics import measures
from bot.analytics.events import HelpAnswer, TicketChange
from bot.analytics.measures import Ratio
from bot.analytics.records import build_records

from .scenario import DAY, msg, scenario


def records():
    return build_records(scenario())


def by_id():
    return {r.conversation_id: r for r in records()}


def test_one_record_per_conversation_in_start_order():
    assert [r.conversation_id for r in records()] == list("ABCDEFGH")
    assert measures.conversations(records()) == 8


def test_containment_counts_bot_only_conversations_the_customer_did_not_leave_mid_problem():
    assert measures.containment(records()) == Ratio(3, 8)  # A, D, E
    assert {r.conversation_id for r in records() if measures.contained(r)} == {"A", "D", "E"}


def test_false_containment_catches_didnt_help_negative_end_low_rating_and_leaving():
    assert measures.false_containment(records()) == Ratio(4, 5)  # B, C, D, E of A-E
    falsely = {r.conversation_id for r in records() if measures.falsely_contained(r)}
    assert falsely == {"B", "C", "D", "E"}


def test_left_mid_problem_after_fallback_or_didnt_help_or_abandoned_queue():
    left = {r.conversation_id for r in records() if r.left_mid_problem}
    assert left == {"B", "C", "G"}


def test_escalation_rate_and_split_by_reason_code():
    assert measures.escalation_rate(records()) == Ratio(3, 8)
    assert measures.escalation_reasons(records()) == {
        "sensitive_topic": Ratio(1, 3),
        "explicit_request": Ratio(1, 3),
        "repeated_fallback": Ratio(1, 3),
    }


def test_time_to_first_agent_reply_uses_the_first_agent_message_of_each_ticket():
    result = measures.time_to_first_agent_reply(records())
    assert (result.count, result.median, result.mean) == (2, 67.5, 67.5)  # F 45 s, H 90 s


def test_agent_handle_time_runs_from_assignment_to_close():
    result = measures.agent_handle_time(records())
    assert (result.count, result.median, result.p90) == (2, 205.0, 270.0)  # F 270 s, H 140 s


def test_abandonment_while_waiting_counts_tickets_left_before_any_agent_took_them():
    assert measures.abandonment_while_waiting(records()) == Ratio(1, 3)


def test_csat_for_bot_only_versus_agent_handled_with_response_rates():
    groups = measures.csat_by_path(records())
    bot, agent = groups["bot_only"], groups["agent_handled"]
    assert (bot.conversations, bot.offered, bot.rated, bot.mean) == (5, 2, 2, 3.0)
    assert bot.satisfied == Ratio(1, 2)
    assert bot.response_rate == Ratio(2, 2)
    assert (agent.conversations, agent.rated, agent.mean) == (2, 1, 4.0)  # F and H
    assert agent.response_rate == Ratio(1, 1)


def test_csat_coverage_is_rated_over_all_conversations():
    assert measures.csat_coverage(records()) == Ratio(3, 8)


def test_per_intent_table_puts_the_worst_served_topic_first():
    rows = {row.intent: row for row in measures.per_intent(records())}
    order = [row.intent for row in measures.per_intent(records())]
    assert order == ["transfer_timing", "exchange_rate", "compromised_card", "card_arrival"]
    card = rows["card_arrival"]
    assert (card.volume, card.fallback, card.didnt_help, card.escalation) == (
        3,
        Ratio(1, 3),
        Ratio(0, 2),
        Ratio(0, 3),
    )
    assert rows["exchange_rate"].didnt_help == Ratio(1, 1)
    assert rows["transfer_timing"].fallback == Ratio(2, 2)
    assert rows["transfer_timing"].escalation == Ratio(1, 1)


def test_escalation_labels_give_unnecessary_and_missed_rates_and_coverage():
    labels = measures.escalation_labels(records())
    assert labels["unnecessary"] == Ratio(1, 2)
    assert labels["missed"] == Ratio(0, 2)
    assert labels["correct"] == Ratio(1, 2)
    assert labels["coverage"] == Ratio(2, 2)


def test_durable_resolution_excludes_a_repeat_contact_on_the_same_topic_within_7_days():
    events = scenario() + [
        # A's customer is back 2 days later about the same card: A was not durably resolved.
        msg("A2", 2 * 86400, "card_arrival", "still no card", customer="cust-A"),
        # E's customer is back after 8 days: outside the window, E stays durable.
        msg("E2", 8 * 86400, "card_arrival", "new card?", customer="cust-E"),
        # D's customer is back the next day on another topic: D stays durable.
        msg("D2", 86400, "change_pin", "pin?", customer="cust-D"),
    ]
    everything = build_records(events)
    period = measures.in_period(everything, DAY, DAY + 86400)
    assert [r.conversation_id for r in period] == list("ABCDEFGH")
    assert measures.durable_resolution(period, everything) == Ratio(2, 3)  # D, E of A, D, E


def test_period_and_topic_filters():
    everything = records()
    assert measures.in_period(everything, DAY + 450, DAY + 650)[0].conversation_id == "F"
    assert [r.conversation_id for r in measures.in_period(everything, topic="card_arrival")] == [
        "A",
        "C",
        "E",
    ]
    assert measures.in_period(everything, topic="cards")[0].conversation_id == "F"


def test_a_customer_back_on_the_same_conversation_days_later_is_a_repeat_contact():
    events = [
        msg("W", 0, "card_arrival", "where is my card", customer=None),
        HelpAnswer(DAY + 5, "W", True, "card_arrival"),
        # the same widget conversation, three days later, same topic
        msg("W", 3 * 86400, "card_arrival", "still no card", customer=None),
    ]
    events = [e if not hasattr(e, "customer_id") else replace(e, customer_id=None) for e in events]
    everything = build_records(events)
    assert [r.conversation_id for r in everything] == ["W", "W~2"]
    assert everything[1].customer_key == "W"
    assert measures.durable_resolution(everything[:1], everything) == Ratio(0, 1)


def test_a_long_wait_in_the_queue_is_still_one_contact():
    events = [
        msg("Q", 0, "request_human", "agent"),
        TicketChange(DAY + 1, "Q", "T-Q", "queued"),
        TicketChange(DAY + 3600, "Q", "T-Q", "assigned", agent_id="ann"),
        TicketChange(DAY + 3700, "Q", "T-Q", "resolved"),
    ]
    (record,) = build_records(events)
    assert record.tickets[0].handle_seconds == 100
