"""What the assistant says: the answer catalogue in `actions/responses.yml`.

`answers` holds one answer per Banking77 intent (a short topic title, the text, optional
buttons); `replies` the conversational messages; `advice` the immediate advice of a sensitive topic
(a scam, a crisis, a vulnerable customer) by its escalation rule's name, said in place of a routine
answer (`actions/advice.py`). All are loaded once and validated, so a missing reply or a malformed
button is a clear error when the action server starts, not mid-chat.

The messages live beside the action server rather than as domain responses because every turn
is answered by `action_respond`: Rasa's validator reports domain responses that no story or rule
uses, and editing an answer then needs no retraining.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

RESPONSES_FILE = Path(__file__).with_name("responses.yml")

REQUIRED_REPLIES = (
    "acknowledge",
    "bot_challenge",
    "decline_noted",
    "did_that_help",
    "glad_it_helped",
    "goodbye",
    "greet",
    "human_requested",
    "offer_human",
    "out_of_scope",
    "rephrase",
    "rephrase_no_topics",
    "thanks",
    "unfamiliar",
)


class ResponsesError(ValueError):
    """The responses file is malformed or incomplete."""


@dataclass(frozen=True)
class Button:
    title: str
    payload: str

    def as_dict(self) -> dict[str, str]:
        return {"title": self.title, "payload": self.payload}


@dataclass(frozen=True)
class Message:
    """One bot message: text and optional buttons."""

    text: str
    buttons: tuple[Button, ...] = field(default=())

    def with_buttons(self, extra: tuple[Button, ...]) -> Message:
        return Message(self.text, self.buttons + extra)


@dataclass(frozen=True)
class Answer:
    """The answer to one routine (banking) intent."""

    intent: str
    topic: str
    message: Message


@dataclass(frozen=True)
class Responses:
    answers: Mapping[str, Answer]
    replies: Mapping[str, Message]
    advice: Mapping[str, Message] = field(default_factory=dict)

    def answer(self, intent: str) -> Answer | None:
        return self.answers.get(intent)

    def reply(self, name: str) -> Message:
        return self.replies[name]

    def advice_for(self, rule: str) -> Message | None:
        """The immediate advice of sensitive rule `rule`, if the catalogue has one."""
        return self.advice.get(rule)

    def topic(self, intent: str) -> str | None:
        answer = self.answers.get(intent)
        return answer.topic if answer else None


def parse_responses(raw: Mapping[str, Any]) -> Responses:
    """Build and validate the catalogue from the YAML structure."""
    if not isinstance(raw, Mapping):
        raise ResponsesError("the responses file must be a mapping with `answers` and `replies`")
    answers = {
        intent: Answer(
            intent, _text(entry, f"answers.{intent}", "topic"), _message(entry, f"answers.{intent}")
        )
        for intent, entry in _section(raw, "answers").items()
    }
    replies = {
        name: _message(entry, f"replies.{name}") for name, entry in _section(raw, "replies").items()
    }
    missing = sorted(set(REQUIRED_REPLIES) - set(replies))
    if missing:
        raise ResponsesError(f"replies missing from the responses file: {', '.join(missing)}")
    raw_advice = raw.get("advice") or {}
    if not isinstance(raw_advice, Mapping):
        raise ResponsesError("`advice` must be a mapping of sensitive rule names to messages")
    advice = {rule: _message(entry, f"advice.{rule}") for rule, entry in raw_advice.items()}
    return Responses(answers=answers, replies=replies, advice=advice)


def _section(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = raw.get(name)
    if not isinstance(section, Mapping) or not section:
        raise ResponsesError(f"`{name}` must be a non-empty mapping")
    return section


def _text(entry: Any, where: str, key: str) -> str:
    value = entry.get(key) if isinstance(entry, Mapping) else None
    if not isinstance(value, str) or not value.strip():
        raise ResponsesError(f"{where}: `{key}` must be a non-empty string")
    return value.strip()


def _message(entry: Any, where: str) -> Message:
    buttons = entry.get("buttons") or [] if isinstance(entry, Mapping) else []
    if not isinstance(buttons, list):
        raise ResponsesError(f"{where}: `buttons` must be a list")
    return Message(
        text=_text(entry, where, "text"),
        buttons=tuple(_button(button, f"{where}.buttons") for button in buttons),
    )


def _button(raw: Any, where: str) -> Button:
    title, payload = _text(raw, where, "title"), _text(raw, where, "payload")
    if not payload.startswith("/"):
        raise ResponsesError(f"{where}: payload {payload!r} must be an intent like `/greet`")
    return Button(title=title, payload=payload)


def load_responses(path: Path = RESPONSES_FILE) -> Responses:
    """Read and validate a responses file."""
    with open(path, encoding="utf-8") as handle:
        return parse_responses(yaml.safe_load(handle))


@lru_cache(maxsize=1)
def get_responses() -> Responses:
    """The project's responses, loaded once per process."""
    return load_responses()
