"""What the escalation actions say: `actions/escalation_messages.yml`, loaded and checked once.

Messages are tagged like every other bot message (see `actions/turn.py`) so later turns, the
signals and analytics know what was said: the offer of a person is tagged `offer_human`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from actions.responses import Button, Message, ResponsesError
from actions.turn import REPLY_KEY

if TYPE_CHECKING:
    from rasa_sdk.executor import CollectingDispatcher

MESSAGES_FILE = Path(__file__).with_name("escalation_messages.yml")
OFFER_TAG = "offer_human"


def _message(name: str, raw: object) -> Message:
    if not isinstance(raw, dict) or not isinstance(raw.get("text"), str):
        raise ResponsesError(f"{MESSAGES_FILE.name}: {name} needs a `text`")
    buttons = tuple(Button(b["title"], b["payload"]) for b in raw.get("buttons") or [])
    return Message(text=raw["text"].strip(), buttons=buttons)


@lru_cache(maxsize=1)
def messages() -> dict[str, Message]:
    """All escalation messages by name."""
    raw = yaml.safe_load(MESSAGES_FILE.read_text(encoding="utf-8"))
    return {name: _message(name, entry) for name, entry in raw.items()}


def say(
    dispatcher: CollectingDispatcher, name: str, tag: str | None = None, **values: object
) -> None:
    """Send message `name` with its placeholders filled, tagged `tag` (default: its name)."""
    message = messages()[name]
    dispatcher.utter_message(
        text=message.text.format(**values) if values else message.text,
        buttons=[button.as_dict() for button in message.buttons],
        **{REPLY_KEY: tag or name},
    )


def eta_text(seconds: float | None) -> str:
    """A wait in words: "under a minute", "about 4 minutes", "unknown"."""
    if seconds is None:
        return "not known yet"
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    return "about 1 minute" if minutes == 1 else f"about {minutes} minutes"
