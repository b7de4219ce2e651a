"""The learning loop: messages the bot could not handle, exported as NLU training candidates.

Two kinds of customer message are exported for review:

- ``fallback``: the NLU fell back (``nlu_fallback``) or judged it out of scope;
- ``handoff``: the customer's last typed message before a ticket was created.

Each becomes an example in Rasa's NLU YAML format, grouped under a *suggested* intent (the best
real intent the NLU ranked, else the intent it chose, else ``needs_review``), with metadata a
reviewer needs: why it was exported, the conversation, the NLU's confidence, and, when the
conversation reached a person, the ticket's topic, reason codes and the agent's disposition.
Button payloads are skipped and texts are de-duplicated (case-insensitive). The file loads
with Rasa's own reader; a reviewer moves each example to the right intent before training.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.analytics.events import CONVERSATIONAL_INTENTS, CustomerMessage
from bot.analytics.records import ConversationRecord, TicketRecord

NEEDS_REVIEW = "needs_review"


@dataclass(frozen=True)
class Candidate:
    text: str
    suggested_intent: str
    reason: str  # fallback | handoff
    conversation_id: str
    nlu_intent: str | None
    confidence: float | None
    topic: str | None = None
    disposition: str | None = None
    reason_codes: tuple[str, ...] = ()

    def metadata(self) -> dict:
        data = {
            "reason": self.reason,
            "conversation_id": self.conversation_id,
            "nlu_intent": self.nlu_intent,
            "confidence": None if self.confidence is None else round(self.confidence, 3),
            "topic": self.topic,
            "disposition": self.disposition,
            "reason_codes": list(self.reason_codes) or None,
        }
        return {k: v for k, v in data.items() if v is not None}


def _suggest(message: CustomerMessage) -> str:
    if message.candidate:
        return message.candidate
    if message.intent and message.intent not in CONVERSATIONAL_INTENTS | {"nlu_fallback"}:
        return message.intent
    return NEEDS_REVIEW


def _typed(message: CustomerMessage) -> bool:
    return bool(message.text.strip()) and not message.text.startswith("/")


def _trigger(record: ConversationRecord, ticket: TicketRecord) -> CustomerMessage | None:
    before = [m for m in record.messages if m.at <= ticket.created_at and _typed(m)]
    return before[-1] if before else None


def _candidate(
    message: CustomerMessage, record: ConversationRecord, reason: str, ticket: TicketRecord | None
) -> Candidate:
    ticket = ticket or next(iter(record.tickets), None)
    return Candidate(
        text=message.text.strip(),
        suggested_intent=_suggest(message),
        reason=reason,
        conversation_id=record.conversation_id,
        nlu_intent=message.intent,
        confidence=message.confidence,
        topic=ticket.topic if ticket else None,
        disposition=ticket.disposition if ticket else None,
        reason_codes=ticket.reason_codes if ticket else (),
    )


def candidates(records: Sequence[ConversationRecord]) -> list[Candidate]:
    """Fallback and handoff-trigger messages of ``records``, de-duplicated, in time order."""
    found: list[tuple[float, Candidate]] = []
    for record in records:
        for message in record.messages:
            if message.fell_back and _typed(message):
                found.append((message.at, _candidate(message, record, "fallback", None)))
        for ticket in record.tickets:
            trigger = _trigger(record, ticket)
            if trigger is not None and not trigger.fell_back:
                found.append((trigger.at, _candidate(trigger, record, "handoff", ticket)))
    seen: set[str] = set()
    unique = []
    for _, candidate in sorted(found, key=lambda pair: pair[0]):
        key = candidate.text.casefold()
        if key not in seen:
            seen.add(key)
            unique.append(candidate)
    return unique


def to_yaml(items: Sequence[Candidate]) -> str:
    """Rasa NLU YAML (``version: "3.1"``) with one block per suggested intent."""
    grouped: dict[str, list[Candidate]] = defaultdict(list)
    for item in items:
        grouped[item.suggested_intent].append(item)
    nlu = [
        {
            "intent": intent,
            "examples": [{"text": c.text, "metadata": c.metadata()} for c in group],
        }
        for intent, group in sorted(grouped.items())
    ]
    header = (
        "# NLU training candidates exported by `python -m bot.analytics.learning` for review:\n"
        "# move each example to the right intent (or delete it) before adding it to data/nlu.\n"
    )
    body = yaml.safe_dump(
        {"version": "3.1", "nlu": nlu}, sort_keys=False, allow_unicode=True, width=100
    )
    return header + body


def main(argv: list[str] | None = None) -> None:
    from bot.analytics.collect import collect_or_exit
    from bot.analytics.period import add_period_arguments, period_of

    parser = argparse.ArgumentParser(description="Export NLU training candidates as Rasa YAML.")
    add_period_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("var/nlu_candidates.yml"))
    args = parser.parse_args(argv)
    start, end = period_of(parser, args)
    everything = collect_or_exit(parser)
    records = [r for r in everything if start <= r.started_at < end]
    items = candidates(records)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(to_yaml(items), encoding="utf-8")
    print(f"{len(items)} candidates from {len(records)} conversations written to {args.out}")


if __name__ == "__main__":
    main()
