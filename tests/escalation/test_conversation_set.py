"""The labelled conversation set the escalation benchmark replays, and its scoring."""

from collections import Counter

from bench.escalation import Outcome, load_conversations, score

CONVERSATIONS = load_conversations()


def test_at_least_80_conversations_covering_every_category():
    assert len(CONVERSATIONS) >= 80
    categories = Counter(c.category for c in CONVERSATIONS)
    assert set(categories) == {"routine", "explicit", "sensitive", "frustration", "unclear", "loop"}
    assert categories["routine"] >= 25


def test_every_conversation_is_multi_turn_or_a_first_message_handoff():
    for conv in CONVERSATIONS:
        assert conv.turns, conv.id
        if not conv.expect_handoff:
            assert len(conv.turns) >= 2, conv.id


def test_labels_point_at_existing_turns():
    for conv in CONVERSATIONS:
        if conv.expect_handoff:
            assert 1 <= conv.latest_turn <= len(conv.turns), conv.id
        if conv.explicit_turn is not None:
            assert conv.expect_handoff and conv.explicit_turn <= conv.latest_turn, conv.id


def test_every_sensitive_rule_is_exercised():
    text = " ".join(" ".join(c.turns) for c in CONVERSATIONS if c.category == "sensitive").lower()
    for word in [
        "stolen",
        "lost",
        "compromised",
        "recognise",
        "never made",
        "direct debit",
        "fraud",
        "scammed",
        "can't afford",
        "struggling",
        "formal complaint",
        "ombudsman",
        "passed away",
        "died",
    ]:
        assert word in text, word


def _outcome(cid, category, expect, escalated=None, handoff=None, **kw):
    return Outcome(
        cid,
        category,
        expect,
        escalated_turn=escalated,
        handoff_turn=handoff,
        handoff_messages=handoff,
        **kw,
    )


def test_score_counts_offers_in_routine_conversations_against_precision_and_containment():
    outcomes = [
        _outcome("a", "routine", False),
        _outcome("b", "routine", False, escalated=2, offered=1),
        _outcome("c", "explicit", True, escalated=1, handoff=1, latest_turn=1, explicit_turn=1),
        _outcome("d", "loop", True, escalated=4, handoff=5, latest_turn=2, max_failed_turns=3),
    ]
    figures = score(outcomes)
    assert figures["precision"] == round(2 / 3, 4)
    assert figures["recall"] == 0.5
    assert figures["containment"] == 0.5
    assert figures["explicit_same_turn"] == 1.0
    assert figures["median_turns_to_handoff"] == 3
    assert figures["worst_failed_turns"] == 3
