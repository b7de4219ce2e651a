"""The cached lookup of applicable rules: it replaces exactly the Rasa method it was written for
and answers every conversation as Rasa's own method does."""

from __future__ import annotations

import itertools
import json
import random

import pytest
from rasa.core.policies.rule_policy import RulePolicy
from rasa.shared.core.constants import SHOULD_NOT_BE_SET

from bot.runtime import rule_lookup

LISTEN = {"action_name": "action_listen"}
RESPOND = {"action_name": "action_respond"}
INTENTS = ["greet", "card_arrival", "request_human", "deny"]

# The states a conversation's turns can have: previous action, intent, entities, slots, loops.
STATES: list[dict] = [
    {},  # a conversation's start
    {"prev_action": LISTEN, "user": {"intent": "greet"}},
    {"prev_action": LISTEN, "user": {"intent": "card_arrival"}},
    {"prev_action": LISTEN, "user": {"intent": "card_arrival", "entities": ("DATE",)}},
    {"prev_action": LISTEN, "user": {"intent": "request_human"}},
    {"prev_action": RESPOND, "user": {"intent": "greet"}},
    {"prev_action": RESPOND, "user": {"intent": "card_arrival"}},
    {"prev_action": RESPOND, "user": {"intent": "deny"}, "slots": {"handoff": (1.0,)}},
    {"prev_action": LISTEN, "user": {"intent": "deny"}, "slots": {"handoff": (1.0,)}},
    {"prev_action": LISTEN, "user": {"intent": "deny"}, "slots": {"handoff": [1.0]}},
    {"prev_action": LISTEN, "user": {"intent": "deny"}, "active_loop": {"name": "form"}},
    {"prev_action": {"action_name": "form"}, "active_loop": {"name": "form"}},
]


def _rules() -> dict[str, str]:
    """A rule lookup in the shape Rasa stores it (json of the rule's states -> action)."""
    rules: list[list[dict]] = []
    for intent in INTENTS:
        user = {"prev_action": LISTEN, "user": {"intent": intent}}
        rules.append([user])
        rules.append([user, {"prev_action": RESPOND, "user": {"intent": intent}}])
    rules.append([{}, {"prev_action": LISTEN, "user": {"intent": "greet"}}])  # conversation start
    deny = {"prev_action": LISTEN, "user": {"intent": "deny"}}
    rules.append([{**deny, "slots": {"handoff": (1.0,)}}])
    rules.append([{**deny, "slots": {"handoff": SHOULD_NOT_BE_SET}}])
    rules.append([{**deny, "active_loop": {"name": SHOULD_NOT_BE_SET}}])
    rules.append([{"prev_action": {"action_name": "form"}, "active_loop": {"name": "form"}}])
    card = {"prev_action": LISTEN, "user": {"intent": "card_arrival", "entities": ("DATE",)}}
    rules.append(
        [
            {"prev_action": RESPOND, "user": {"intent": "greet"}},
            card,
            {**card, "prev_action": RESPOND},
        ]
    )
    return {json.dumps(rule): f"action_{n}" for n, rule in enumerate(rules)}


@pytest.fixture
def policy() -> RulePolicy:
    return RulePolicy.__new__(RulePolicy)  # the methods compared use no instance state


def test_rasas_methods_are_the_ones_the_patch_was_written_for() -> None:
    """Fails when a Rasa upgrade changes them: review the patch, then update the hash."""
    assert rule_lookup.rasa_source_sha256() == rule_lookup.RASA_SOURCE_SHA256


def test_every_conversation_gets_rasas_answer_first_time_and_from_the_cache(policy) -> None:
    rules = _rules()
    draw = random.Random(11)
    conversations = [list(c) for n in range(0, 4) for c in itertools.product(STATES, repeat=n)]
    conversations += [[draw.choice(STATES) for _ in range(draw.randint(4, 9))] for _ in range(300)]
    rule_lookup._answers.clear()
    answered = set()
    for states in conversations:
        expected = rule_lookup.ORIGINAL(policy, rules, states)
        for _ in range(2):
            answer = rule_lookup.possible_keys(policy, rules, states)
            assert answer == expected, states
            answer.clear()  # a caller changing its set leaves the cache alone
        answered |= expected
    assert len(answered) > 5  # the conversations reach many of the rules
    # the cache holds one answer per distinct last-3-states, not one per conversation
    assert len(rule_lookup._answers) < len(conversations)


def test_changed_rules_and_unfreezable_states_are_answered_by_rasas_method(policy) -> None:
    rules = _rules()
    states = [STATES[1], STATES[5]]
    first = rule_lookup.possible_keys(policy, rules, states)
    assert first
    rules[json.dumps([STATES[1], STATES[5]])] = "action_new"  # a lookup that changed
    assert (
        rule_lookup.possible_keys(policy, rules, states)
        == rule_lookup.ORIGINAL(policy, rules, states)
        == first | {json.dumps([STATES[1], STATES[5]])}
    )
    odd = [{"prev_action": LISTEN, "user": {"intent": object()}}]
    assert rule_lookup.possible_keys(policy, rules, odd) == rule_lookup.ORIGINAL(policy, rules, odd)
    assert rule_lookup.possible_keys(policy, {}, states) == set()


def test_the_cache_is_bounded(policy, monkeypatch) -> None:
    monkeypatch.setattr(rule_lookup, "MAX_ENTRIES", 5)
    rule_lookup._answers.clear()
    for state in STATES:
        rule_lookup.possible_keys(policy, _rules(), [state])
    assert len(rule_lookup._answers) == 5


def test_apply_replaces_rasas_method_and_is_idempotent(monkeypatch) -> None:
    monkeypatch.setattr(RulePolicy, "_get_possible_keys", rule_lookup.ORIGINAL)
    assert rule_lookup.apply() is True
    assert RulePolicy._get_possible_keys is rule_lookup.possible_keys
    assert rule_lookup.apply() is True


def test_apply_leaves_a_changed_rasa_method_alone(monkeypatch, caplog) -> None:
    monkeypatch.setattr(RulePolicy, "_get_possible_keys", rule_lookup.ORIGINAL)
    monkeypatch.setattr(rule_lookup, "RASA_SOURCE_SHA256", "0" * 64)
    assert rule_lookup.apply() is False
    assert RulePolicy._get_possible_keys is rule_lookup.ORIGINAL
    assert "changed" in caplog.text
