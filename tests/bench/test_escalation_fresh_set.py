"""The `fresh` conversation part (tests/conversations/fresh), written blind and never tuned on, is
well formed and wired into `bench.escalation`.

Only the format is checked here; the set is scored by the escalation benchmark.
"""

from collections import Counter

import pytest
import yaml

from bench import escalation
from bench.escalation import PARTS, load_parts
from bot.config import PROJECT_ROOT

FRESH = load_parts(["fresh"])
BANKING_INTENTS = set(yaml.safe_load((PROJECT_ROOT / "domain/faq.yml").read_text())["intents"])


def test_fresh_is_its_own_subfolder_part():
    assert PARTS["fresh"] == PARTS["main"] / "fresh"
    assert {c.part for c in FRESH} == {"fresh"}
    assert not {c.id for c in FRESH} & {c.id for c in load_parts(["main"])}


def test_parts_option_accepts_fresh(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        escalation.main(["--parts", "fresh,secret"])
    err = capsys.readouterr().err
    assert "unknown part(s) secret;" in err and "fresh" in err.split(";")[1]


def test_fresh_has_at_least_80_conversations_in_every_category():
    categories = Counter(c.category for c in FRESH)
    assert len(FRESH) >= 80
    assert set(categories) == {"routine", "explicit", "sensitive", "frustration", "unclear", "loop"}
    assert 0.30 <= categories["routine"] / len(FRESH) <= 0.40


def test_fresh_ids_are_prefixed_and_unique_across_every_part():
    assert all(c.id.startswith("fresh-") for c in FRESH)
    load_parts(list(PARTS))  # raises when an id is used twice


def test_fresh_routine_keeps_the_bot_and_the_rest_expect_a_person_in_time():
    for conv in FRESH:
        assert conv.turns and all(t.strip() for t in conv.turns), conv.id
        if conv.category == "routine":
            assert not conv.expect_handoff and len(conv.turns) >= 2, conv.id
            assert conv.latest_turn is None and conv.explicit_turn is None, conv.id
            assert conv.topics is None or conv.topics <= BANKING_INTENTS, conv.id
        else:
            assert conv.expect_handoff and conv.expect_topic is None, conv.id
            assert 1 <= conv.latest_turn <= len(conv.turns), conv.id
        if conv.category == "explicit":
            assert conv.explicit_turn == conv.latest_turn, conv.id


def test_every_fresh_file_says_it_was_written_blind():
    for path in sorted(PARTS["fresh"].glob("*.yml")):
        assert "written blind" in path.read_text().splitlines()[0], path.name
