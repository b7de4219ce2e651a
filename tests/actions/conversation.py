"""A customer talking to `action_respond` through real rasa_sdk trackers (shared by the action
tests): events accumulate as in Rasa's tracker; policies that are always / never open."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.context import POLICY
from actions.escalation import EscalationGate
from actions.handoff import ActionHandback
from actions.respond import ActionRespond

ALWAYS_OPEN = POLICY.copy(
    update={
        "handoff": POLICY.handoff.copy(
            update={
                "opening_hours": POLICY.handoff.opening_hours.copy(
                    update={"open": "00:00", "close": "24:00"}
                )
            }
        )
    },
    deep=True,
)
NEVER_OPEN = POLICY.copy(
    update={
        "handoff": POLICY.handoff.copy(
            update={"opening_hours": POLICY.handoff.opening_hours.copy(update={"days": []})}
        )
    },
    deep=True,
)


class Conversation:
    """A customer talking to action_respond; events accumulate like Rasa's tracker does."""

    def __init__(self, sender: str, policy=ALWAYS_OPEN) -> None:
        self.sender = sender
        self.events: list[dict[str, Any]] = []
        self.slots: dict[str, Any] = {"handoff_mode": "bot"}
        self.action = ActionRespond(gate=EscalationGate(policy))

    def _tracker(self, latest: dict[str, Any]) -> Tracker:
        return Tracker(
            self.sender,
            dict(self.slots),
            latest,
            list(self.events),
            False,
            None,
            {},
            "action_listen",
        )

    def _apply(self, dispatcher: CollectingDispatcher, events: list[dict[str, Any]]) -> None:
        for event in events:
            if event["event"] == "slot":
                self.slots[event["name"]] = event["value"]
        for message in dispatcher.messages:
            self.events.append(
                {
                    "event": "bot",
                    "text": message.get("text"),
                    "data": {},
                    "metadata": {"reply": message.get("reply")},
                }
            )

    async def say(
        self,
        text: str,
        intent: str,
        confidence: float = 0.95,
        entities: list | None = None,
        **nlu: Any,
    ) -> list[dict[str, Any]]:
        """The customer says `text`, read by the NLU as `intent`; `nlu` adds parse-result keys
        (`familiarity`, `embedding`) as the NLU pipeline does."""
        latest = {
            **nlu,
            "text": text,
            "intent": {"name": intent, "confidence": confidence},
            "intent_ranking": [
                {"name": intent, "confidence": confidence},
                {"name": "greet", "confidence": 0.01},
            ],
            "entities": entities or [],
        }
        self.events.append({"event": "user", "text": text, "parse_data": latest, "timestamp": 1.0})
        dispatcher = CollectingDispatcher()
        events = await self.action.run(dispatcher, self._tracker(latest), {})
        self._apply(dispatcher, events)
        return dispatcher.messages

    async def handback(self) -> list[dict[str, Any]]:
        dispatcher = CollectingDispatcher()
        events = await ActionHandback().run(dispatcher, self._tracker({}), {})
        self._apply(dispatcher, events)
        return dispatcher.messages


def replies(messages: list[dict[str, Any]]) -> list[str]:
    return [m.get("reply") for m in messages]
