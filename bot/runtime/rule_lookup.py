"""Rasa's rule policy finds the rules that apply to a conversation's last turns from a cache.

Rasa 3.6's ``RulePolicy._get_possible_keys(lookup, states)`` filters every learned rule (here
~100: one per intent, all leading to ``action_respond``) against the conversation's states, one
``_is_rule_applicable`` call per rule and state, twice per prediction and twice per turn: ~600
calls per turn, ~10 % of Rasa's CPU per bot turn (docs/performance.md). Its answer depends only on
the rule keys of ``lookup`` and the conversation's last states: ``_is_rule_applicable`` answers
True for a state further back than the rule is long, so states further back than the longest
rule never remove a key. In a support conversation the same few (intent, previous action) pairs
come back again and again.

:func:`possible_keys` replaces that method: it remembers the answer for (the rule keys, the last
``L`` states, ``L`` the length of the longest rule), and computes it with Rasa's own method
otherwise. The states are frozen into a hashable form that keeps the type of every value
(a list and a tuple compare differently in ``_does_rule_match_state``); a state that cannot be
frozen is not cached. Each call returns a new set. The cache holds at most :data:`MAX_ENTRIES`
answers (least recently used dropped).

Guarded (:mod:`bot.runtime.guarded_patch`): applied by ``python -m bot.runtime.rasa_server``
only when the source of the two Rasa methods the reasoning above relies on
(``_get_possible_keys`` and ``_is_rule_applicable``) hashes to :data:`RASA_SOURCE_SHA256`;
``tests/runtime/test_rule_lookup.py`` fails when a Rasa upgrade changes them, and compares the
answers with Rasa's own method on the trained model's rules.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from rasa.core.policies.rule_policy import RulePolicy

from bot.runtime.guarded_patch import GuardedPatch

# sha256 of the sources of RulePolicy._get_possible_keys and RulePolicy._is_rule_applicable
# (joined by a newline) in rasa 3.6.21.
RASA_SOURCE_SHA256 = "39938321e45d020ab5be10e522c63363c818add9bae9213f840240dae54d0511"
MAX_ENTRIES = 4096

ORIGINAL = RulePolicy._get_possible_keys
_answers: OrderedDict[tuple[Any, ...], frozenset[str]] = OrderedDict()
_rule_sets: dict[int, tuple[frozenset[str], int]] = {}  # id(lookup) -> (its keys, longest rule)


class _Unfreezable(Exception):
    pass


def _freeze(value: Any) -> Any:
    """A hashable stand-in for a state's value that tells apart what compares differently."""
    if isinstance(value, dict):
        return ("dict", tuple(sorted(((k, _freeze(v)) for k, v in value.items()), key=_first)))
    if isinstance(value, list):
        return ("list", tuple(_freeze(v) for v in value))
    if isinstance(value, tuple):
        return ("tuple", tuple(_freeze(v) for v in value))
    if value is None or isinstance(value, str | int | float | bool):
        return (type(value).__name__, value)
    raise _Unfreezable(type(value).__name__)


def _first(pair: tuple[Any, Any]) -> Any:
    if not isinstance(pair[0], str):
        raise _Unfreezable("a key that is not a string")
    return pair[0]


def _rule_set(lookup: dict[str, Any]) -> tuple[frozenset[str], int]:
    """The rule keys of ``lookup`` and the number of states of its longest rule."""
    known = _rule_sets.get(id(lookup))
    if known is not None and known[0] == lookup.keys():
        return known
    keys = frozenset(lookup)
    longest = max((len(RulePolicy._rule_key_to_state(key)) for key in keys), default=0)
    _rule_sets[id(lookup)] = (keys, longest)
    return keys, longest


def possible_keys(self: RulePolicy, lookup: dict[str, Any], states: list[Any]) -> set[str]:
    """Rasa's ``RulePolicy._get_possible_keys``, answered from the cache when it can be."""
    keys, longest = _rule_set(lookup)
    try:
        recent = tuple(_freeze(state) for state in states[-longest:]) if longest else ()
    except _Unfreezable:
        return ORIGINAL(self, lookup, states)
    cache_key = (type(self), keys, recent)
    answer = _answers.get(cache_key)
    if answer is None:
        answer = frozenset(ORIGINAL(self, lookup, states))
        _answers[cache_key] = answer
        if len(_answers) > MAX_ENTRIES:
            _answers.popitem(last=False)
    else:
        _answers.move_to_end(cache_key)
    return set(answer)


PATCH = GuardedPatch(
    owner=RulePolicy,
    attribute="_get_possible_keys",
    replacement=possible_keys,
    guarded=(ORIGINAL, RulePolicy._is_rule_applicable),
    what="Rasa's RulePolicy._get_possible_keys or _is_rule_applicable",
    module=__name__,
)


def rasa_source_sha256() -> str:
    """sha256 of the sources of the two Rasa methods this patch relies on, as installed."""
    return PATCH.rasa_source_sha256()


def apply() -> bool:
    """Replace Rasa's method by :func:`possible_keys`; True when it was replaced (or already
    was). Leaves Rasa's method in place, and warns, when its source is not the expected one."""
    return PATCH.apply(RASA_SOURCE_SHA256)
