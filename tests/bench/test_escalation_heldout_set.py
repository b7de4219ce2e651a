"""The held-out conversation set (tests/conversations/heldout) is well formed.

Only the format is checked here; the set is scored by the escalation benchmark, never tuned on.
"""

from collections import Counter
from pathlib import Path

import yaml

from bench.escalation import CONVERSATIONS_DIR, load_parts

HELDOUT_DIR = CONVERSATIONS_DIR / "heldout"
CATEGORIES = {
    "routine",
    "explicit",
    "sensitive",
    "frustration",
    "unclear",
    "loop",
    "vulnerable",
    "scam",
}
FIELDS = {
    "id",
    "category",
    "expect_handoff",
    "latest_turn",
    "explicit_turn",
    "expect_topic",
    "turns",
}


def _load(directory: Path) -> list[dict]:
    conversations = []
    for path in sorted(directory.glob("*.yml")):
        conversations.extend(yaml.safe_load(path.read_text())["conversations"])
    return conversations


HELDOUT = _load(HELDOUT_DIR)


def test_heldout_has_at_least_120_conversations_covering_every_category():
    categories = Counter(c["category"] for c in HELDOUT)
    assert len(HELDOUT) >= 120
    assert set(categories) == CATEGORIES
    assert 0.40 <= categories["routine"] / len(HELDOUT) <= 0.50


def test_heldout_ids_are_unique_and_distinct_from_the_development_set():
    ids = [c["id"] for c in HELDOUT]
    assert len(ids) == len(set(ids))
    assert not set(ids) & {c.id for c in load_parts(["main", "dev"])}


def test_heldout_conversations_have_only_known_fields_and_non_empty_turns():
    for conv in HELDOUT:
        assert set(conv) <= FIELDS, conv["id"]
        assert conv["turns"], conv["id"]
        assert all(isinstance(t, str) and t.strip() for t in conv["turns"]), conv["id"]


def test_heldout_routine_conversations_keep_the_bot_and_the_rest_expect_a_person():
    for conv in HELDOUT:
        routine = conv["category"] == "routine"
        assert conv["expect_handoff"] is not routine, conv["id"]
        if routine:
            assert len(conv["turns"]) >= 2, conv["id"]
            assert "latest_turn" not in conv and "explicit_turn" not in conv, conv["id"]
        else:
            assert "expect_topic" not in conv, conv["id"]


def test_heldout_labels_point_at_existing_turns():
    for conv in HELDOUT:
        if conv["expect_handoff"]:
            assert 1 <= conv["latest_turn"] <= len(conv["turns"]), conv["id"]
        if "explicit_turn" in conv:
            assert conv["explicit_turn"] <= conv["latest_turn"], conv["id"]
