"""A changed escalation policy replayed in shadow shows exactly the conversations it changes."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.analytics.events import BotMessage, CustomerMessage
from bot.analytics.records import build_records
from bot.analytics.replay import replay
from bot.config import PROJECT_ROOT
from bot.escalation import load_policy

POLICY = PROJECT_ROOT / "escalation_policy.yml"


def turn(cid, t, text, intent, conf=0.9, replies=()):
    ranking = ((intent, conf),)
    return CustomerMessage(t, cid, text, intent, conf, None, None, None, ranking, tuple(replies))


def conversations():
    return [
        # Hardship in words on a routine intent: the policy in force hands off on turn 1.
        turn(
            "hardship",
            1,
            "I lost my job and can't pay my rent, can I pause my card",
            "card_not_working",
        ),
        # Two unclear messages: offered a person on turn 2 (failed_turns.offer_after = 2).
        turn("unclear", 10, "blorp", "nlu_fallback", 0.2),
        BotMessage(10.5, "unclear", "Sorry?"),
        turn("unclear", 11, "flarp zing", "nlu_fallback", 0.2, replies=("unclear",)),
        # A routine question, answered, thanks: never escalated by either policy.
        turn("routine", 20, "when will my card arrive", "card_arrival"),
        turn("routine", 21, "thanks", "thanks", replies=("answer:card_arrival", "did_that_help")),
    ]


def candidate(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(POLICY.read_text())
    edit(data)
    path = tmp_path / "candidate.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def drop_hardship_and_offer_sooner(data: dict) -> None:
    data["sensitive"] = [r for r in data["sensitive"] if r["name"] != "hardship"]
    data["failed_turns"]["offer_after"] = 1


def test_replay_lists_the_conversations_a_candidate_policy_escalates_differently(tmp_path):
    records = build_records(conversations())
    current = load_policy(POLICY)
    changed = load_policy(candidate(tmp_path, drop_hardship_and_offer_sooner))

    result = replay(records, current, changed)

    rows = {row.conversation_id: row for row in result.changed}
    assert result.conversations == 3
    assert set(rows) == {"hardship", "unclear"}
    assert rows["hardship"].change == "no_longer_handed_off"
    assert rows["hardship"].current.first_handoff == 1
    assert "sensitive:hardship" in rows["hardship"].current.reasons
    assert rows["unclear"].change == "offered_earlier"
    assert (rows["unclear"].current.first_offer, rows["unclear"].candidate.first_offer) == (2, 1)
    assert result.counts == {"no_longer_handed_off": 1, "offered_earlier": 1}


def test_replaying_the_policy_in_force_changes_nothing():
    records = build_records(conversations())
    policy = load_policy(POLICY)
    assert replay(records, policy, policy).changed == []
