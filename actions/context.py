"""What the parts of a customer turn share: the loaded escalation policy and the turn's context.

`POLICY` is the escalation policy file of the settings (`ESCALATION_POLICY`, default
`escalation_policy.yml`), loaded once when the action server imports the actions, so a bad file
stops the start and says why. `TurnContext` carries one turn through the escalation gate
(`actions/escalation.py`), the handoff (`actions/handoff.py`) and satisfaction (`actions/csat.py`)
in place of loose arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.turn import TrackerTurn
from bot.config import get_settings
from bot.escalation import Policy, load_policy

if TYPE_CHECKING:
    from rasa_sdk import Tracker

    from bot.escalation import Decision
    from bot.handoff import HandoffState
    from bot.signals import SignalState, TurnSignals

POLICY: Policy = load_policy(get_settings().escalation_policy)

Answer = Callable[[TrackerTurn, CollectingDispatcher], list[EventType]]
"""`action_respond`'s routine answer to a turn: sends the messages, returns the events."""


@dataclass(frozen=True)
class Assessment:
    """One turn measured and decided: its signals, the policy's decision, the signal state to
    carry to the next turn and the audit entry to record."""

    signals: TurnSignals
    decision: Decision
    state: SignalState
    entry: dict[str, Any]


@dataclass(frozen=True)
class TurnContext:
    """One customer turn as the escalation steps see it."""

    turn: TrackerTurn
    tracker: Tracker
    dispatcher: CollectingDispatcher
    state: HandoffState  # the conversation's handoff state, synced with its ticket
    assessment: Assessment
    answer: Answer
    policy: Policy

    @property
    def conversation_id(self) -> str:
        return self.tracker.sender_id


def audit_entries(tracker: Tracker) -> list[dict[str, Any]]:
    """The per-turn audit entries kept in the `escalation_audit` slot (malformed ones dropped)."""
    raw = tracker.get_slot("escalation_audit")
    return [entry for entry in raw if isinstance(entry, dict)] if isinstance(raw, list) else []
