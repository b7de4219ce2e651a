"""The labelled conversation set the escalation benchmark replays (the top-level files, `dev/` and
`heldout/`), and its scoring."""

from collections import Counter

import yaml

from bench.escalation import PARTS, Outcome, load_parts, score
from bot.config import PROJECT_ROOT

CONVERSATIONS = load_parts(["main", "dev"])  # never the held-out part: nothing is tuned on it
DEV = [c for c in CONVERSATIONS if c.part == "dev"]
BANKING_INTENTS = set(yaml.safe_load((PROJECT_ROOT / "domain/faq.yml").read_text())["intents"])


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


def test_the_top_level_files_and_each_subfolder_are_their_own_parts():
    assert {c.part for c in CONVERSATIONS} == {"main", "dev"}
    assert PARTS["dev"] == PARTS["main"] / "dev" and PARTS["heldout"] == PARTS["main"] / "heldout"


def test_dev_part_has_130_conversations_half_of_them_routine_and_every_category():
    assert len(DEV) >= 130
    categories = Counter(c.category for c in DEV)
    assert set(categories) == {"routine", "explicit", "sensitive", "frustration", "unclear", "loop"}
    assert 0.4 <= categories["routine"] / len(DEV) <= 0.6


def test_routine_dev_conversations_name_the_banking_topic_of_their_first_turn():
    for conv in DEV:
        if conv.category == "routine":
            topics = (
                [conv.expect_topic] if isinstance(conv.expect_topic, str) else conv.expect_topic
            )
            assert topics and set(topics) <= set(BANKING_INTENTS), conv.id
        else:
            assert conv.expect_topic is None, conv.id


def test_dev_part_covers_vulnerable_customers_scams_and_indirect_requests():
    text = " ".join(" ".join(c.turns) for c in DEV).lower()
    for word in [
        "met online",  # romance
        "link",  # smishing
        "safe account",  # impersonation
        "crypto",  # investment
        "hi mum",  # impersonating family
        "logged in",  # stolen phone signed in
        "dont want to be alive",  # crisis
        "gambling",
        "power of attorney",
        "dementia",
        "carer",
        "takes all my wages",  # economic control
        "cancer",  # health
        "divorce",  # life event
        "redundant",
        "passed away",
        "phone number",  # indirect requests for a person
        "call me back",
        "manager",
        "supervisor",
        "tried again, same thing",  # typed follow-ups restating the need
        "still",
        "lost the receipt",  # routine question with a scary word
        "hola",  # other languages
        "dzień dobry",
        "bonjour",
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
