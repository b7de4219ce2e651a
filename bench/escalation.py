"""Replay the labelled conversations against the running bot and score its escalation.

    python -m bench.escalation --rasa-url http://127.0.0.1:5005 [--parts main,dev,heldout,fresh]
        [--concurrency 4] [--json out.json]

Needs Rasa with `--enable-api` and the REST channel, the action server, and their Redis. The
conversations come in parts, scored separately and together: `main` (`tests/conversations/*.yml`),
`dev` (`tests/conversations/dev/*.yml`, for tuning), `heldout` (`tests/conversations/heldout/
*.yml`, never tuned on) and `fresh` (`tests/conversations/fresh/*.yml`, written blind, never tuned
on); a part whose folder is missing is skipped. Each conversation (format in
the folder's README) is sent turn by turn to
`POST /webhooks/rest/webhook`; after each turn the tracker (`GET /conversations/<id>/tracker`)
tells what the escalation did: its audit entry, whether a person was offered (a bot message
tagged `offer_human`) and whether a ticket was opened (slot `handoff_ticket`). The simulated
customer accepts an offer when its conversation is labelled `expect_handoff`, else declines it.

Printed, each beside its target:
- handoff precision: of the conversations the bot escalated (offered a person or handed off),
  the share labelled as needing a person (>= 0.95);
- handoff recall: of those labelled as needing a person, the share escalated by their
  `latest_turn` (>= 0.95);
- routine containment: routine conversations finished without a ticket or an offer (>= 0.93);
- explicit requests handed off on the same turn (all);
- median customer turns to the handoff (reported);
- worst case of failed turns before a person was offered (<= 2);
- wrong-answer rate: of the routine conversations labelled with `expect_topic` (the intents whose
  answers are right), the share that got any other intent's routine answer (a bot message tagged
  `answer:<intent>`), and the same per answer given (reported; lower is better).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bot.config import PROJECT_ROOT, get_settings

CONVERSATIONS_DIR = PROJECT_ROOT / "tests" / "conversations"
PARTS = {"main": CONVERSATIONS_DIR, "dev": CONVERSATIONS_DIR / "dev"}
PARTS["heldout"] = CONVERSATIONS_DIR / "heldout"  # the lead's; never tuned on
PARTS["fresh"] = CONVERSATIONS_DIR / "fresh"  # written blind, never tuned on
ANSWER_PREFIX = "answer:"
ACCEPT, DECLINE = "/request_human", "/continue_with_bot"
TARGETS = {
    "precision": 0.95,
    "recall": 0.95,
    "containment": 0.93,
    "explicit_same_turn": 1.0,
    "worst_failed_turns": 2,
}


@dataclass
class Conversation:
    id: str
    category: str
    expect_handoff: bool
    turns: list[str]
    latest_turn: int | None = None
    explicit_turn: int | None = None
    expect_topic: str | list[str] | None = None  # routine: the intents whose answers are right
    part: str = "main"

    @property
    def topics(self) -> set[str] | None:
        if self.expect_topic is None:
            return None
        return {self.expect_topic} if isinstance(self.expect_topic, str) else set(self.expect_topic)


@dataclass
class Outcome:
    id: str
    category: str
    expect_handoff: bool
    escalated_turn: int | None = None  # scripted turn of the first offer or handoff
    handoff_turn: int | None = None  # scripted turn on which the ticket was opened
    handoff_messages: int | None = None  # customer messages sent until the ticket (with clicks)
    offered: int = 0
    max_failed_turns: int = 0
    reasons: list[str] = field(default_factory=list)
    latest_turn: int | None = None
    explicit_turn: int | None = None
    transcript: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    part: str = "main"
    expect_topic: list[str] | None = None
    answers: list[str] = field(default_factory=list)  # intents whose routine answer was given

    @property
    def wrong_answers(self) -> list[str]:
        """Answers of intents not in `expect_topic` (none when it is not labelled)."""
        if self.expect_topic is None:
            return []
        return [a for a in self.answers if a not in self.expect_topic]

    @property
    def escalated(self) -> bool:
        return self.escalated_turn is not None

    @property
    def in_time(self) -> bool:
        return self.escalated and (
            self.latest_turn is None or self.escalated_turn <= self.latest_turn
        )


def load_parts(parts: list[str]) -> list[Conversation]:
    """The conversations of the named parts (a part without a folder has none), ids unique."""
    conversations: list[Conversation] = []
    for part in parts:
        directory = PARTS[part]
        if directory.is_dir():
            conversations += load_conversations(directory, part)
    ids = [c.id for c in conversations]
    if len(ids) != len(set(ids)):
        raise ValueError("conversation ids must be unique across the parts")
    return conversations


def load_conversations(
    directory: Path = CONVERSATIONS_DIR, part: str = "main"
) -> list[Conversation]:
    """Every labelled conversation of a folder, checked for the fields the benchmark needs."""
    conversations: list[Conversation] = []
    for path in sorted(directory.glob("*.yml")):
        for raw in yaml.safe_load(path.read_text())["conversations"]:
            conv = Conversation(**raw, part=part)
            if conv.expect_handoff and conv.latest_turn is None:
                raise ValueError(f"{path.name}: {conv.id} expects a handoff but has no latest_turn")
            conversations.append(conv)
    ids = [c.id for c in conversations]
    if len(ids) != len(set(ids)):
        raise ValueError("conversation ids must be unique")
    return conversations


class Bot:
    """The running bot through its REST channel and HTTP API."""

    def __init__(
        self, session: aiohttp.ClientSession, rasa_url: str, token: str | None = None
    ) -> None:
        self.session = session
        self.url = rasa_url.rstrip("/")
        self.params = {"token": token} if token else {}  # Rasa's HTTP API token

    async def send(self, sender: str, text: str) -> list[dict[str, Any]]:
        async with self.session.post(
            f"{self.url}/webhooks/rest/webhook", json={"sender": sender, "message": text}
        ) as resp:
            resp.raise_for_status()
            return await resp.json()

    async def tracker(self, sender: str) -> dict[str, Any]:
        url = f"{self.url}/conversations/{sender}/tracker"
        async with self.session.get(url, params=self.params) as resp:
            resp.raise_for_status()
            return await resp.json()


def _turn_view(tracker: dict[str, Any]) -> dict[str, Any]:
    """What the last turn did: its audit entry, offer and ticket."""
    events = tracker.get("events") or []
    last_user = max((i for i, e in enumerate(events) if e.get("event") == "user"), default=-1)
    replies = [
        (e.get("metadata") or {}).get("reply")
        for e in events[last_user + 1 :]
        if e.get("event") == "bot"
    ]
    slots = tracker.get("slots") or {}
    audit = slots.get("escalation_audit") or []
    return {
        "entry": audit[-1] if audit else {},
        "offered": "offer_human" in replies,
        "ticket": slots.get("handoff_ticket"),
        "replies": replies,
    }


async def replay(bot: Bot, conv: Conversation, run_id: str) -> Outcome:
    """Play one conversation as a customer would, reacting to offers of a person."""
    sender = f"bench-{run_id}-{conv.id}"
    out = Outcome(
        conv.id,
        conv.category,
        conv.expect_handoff,
        latest_turn=conv.latest_turn,
        explicit_turn=conv.explicit_turn,
        part=conv.part,
        expect_topic=sorted(conv.topics) if conv.topics is not None else None,
    )
    sent = 0

    async def say(text: str, scripted_turn: int) -> dict[str, Any]:
        nonlocal sent
        sent += 1
        replies = await bot.send(sender, text)
        view = _turn_view(await bot.tracker(sender))
        entry = view["entry"]
        failed = int(((entry.get("signals") or {}).get("failed_turns")) or 0)
        out.max_failed_turns = max(out.max_failed_turns, failed)
        decision = entry.get("decision") or {}
        out.transcript.append(
            {
                "customer": text,
                "bot": [r.get("text") for r in replies],
                "replies": view["replies"],
                "decision": decision.get("action"),
                "reasons": decision.get("reasons"),
                "failed_turns": failed,
            }
        )
        out.answers += [
            r[len(ANSWER_PREFIX) :]
            for r in view["replies"]
            if isinstance(r, str) and r.startswith(ANSWER_PREFIX)
        ]
        if view["offered"]:
            out.offered += 1
        if (view["offered"] or view["ticket"]) and out.escalated_turn is None:
            out.escalated_turn = scripted_turn
        if view["ticket"] and out.handoff_turn is None:
            out.handoff_turn, out.handoff_messages = scripted_turn, sent
            out.reasons = decision.get("reasons") or []
        return view

    try:
        for number, text in enumerate(conv.turns, start=1):
            view = await say(text, number)
            if view["ticket"]:
                break
            if view["offered"]:
                view = await say(ACCEPT if conv.expect_handoff else DECLINE, number)
                if view["ticket"]:
                    break
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    return out


def score(outcomes: list[Outcome]) -> dict[str, Any]:
    """The benchmark's figures from the outcomes."""
    positives = [o for o in outcomes if o.expect_handoff]
    escalated = [o for o in outcomes if o.escalated]
    routine = [o for o in outcomes if o.category == "routine"]
    explicit = [o for o in outcomes if o.explicit_turn is not None]
    to_handoff = [o.handoff_messages for o in positives if o.handoff_messages is not None]
    return {
        "conversations": len(outcomes),
        "errors": sum(o.error is not None for o in outcomes),
        "precision": _ratio(sum(o.expect_handoff for o in escalated), len(escalated)),
        "recall": _ratio(sum(o.in_time for o in positives), len(positives)),
        "containment": _ratio(
            sum(o.handoff_turn is None and not o.offered for o in routine), len(routine)
        ),
        "explicit_same_turn": _ratio(
            sum(o.handoff_turn == o.explicit_turn for o in explicit), len(explicit)
        ),
        "median_turns_to_handoff": statistics.median(to_handoff) if to_handoff else None,
        "handoffs": len(to_handoff),
        "worst_failed_turns": max((o.max_failed_turns for o in outcomes), default=0),
        "topic_labelled": len(labelled := [o for o in routine if o.expect_topic is not None]),
        "wrong_answer_rate": _ratio(sum(bool(o.wrong_answers) for o in labelled), len(labelled)),
        "wrong_answers_per_answer": _ratio(
            sum(len(o.wrong_answers) for o in labelled), sum(len(o.answers) for o in labelled)
        ),
    }


def score_parts(outcomes: list[Outcome]) -> dict[str, dict[str, Any]]:
    """The figures of each part present, and of all of them together."""
    parts = [p for p in PARTS if any(o.part == p for o in outcomes)]
    figures = {p: score([o for o in outcomes if o.part == p]) for p in parts}
    figures["all"] = score(outcomes)
    return figures


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def report(figures: dict[str, Any], outcomes: list[Outcome]) -> str:
    def line(name: str, label: str, target: str, ok: bool | None) -> str:
        value = figures[name]
        shown = "n/a" if value is None else (f"{value:.3f}" if isinstance(value, float) else value)
        mark = "" if ok is None else ("  ok" if ok else "  MISSED")
        return f"  {label:<44} {shown!s:>7}   target {target}{mark}"

    f = figures
    lines = [
        f"Escalation benchmark: {f['conversations']} conversations, {f['handoffs']} handoffs, "
        f"{f['errors']} errors",
        line("precision", "handoff precision", ">= 0.95", _meets(f["precision"], 0.95)),
        line(
            "recall", "handoff recall (by the labelled turn)", ">= 0.95", _meets(f["recall"], 0.95)
        ),
        line(
            "containment",
            "routine containment",
            f">= {TARGETS['containment']:.2f}",
            _meets(f["containment"], TARGETS["containment"]),
        ),
        line(
            "explicit_same_turn",
            "explicit requests handed off on the same turn",
            "1.000",
            _meets(f["explicit_same_turn"], 1.0),
        ),
        line("median_turns_to_handoff", "median customer turns to handoff", "(report)", None),
        line(
            "worst_failed_turns",
            "worst failed turns before a person was offered",
            "<= 2",
            f["worst_failed_turns"] <= 2,
        ),
        line(
            "wrong_answer_rate",
            f"wrong-answer rate ({f['topic_labelled']} labelled routine)",
            "(report)",
            None,
        ),
        line("wrong_answers_per_answer", "wrong answers per routine answer", "(report)", None),
    ]
    misses = [
        o
        for o in outcomes
        if o.error
        or (o.expect_handoff and not o.in_time)
        or (not o.expect_handoff and o.escalated)
        or (o.explicit_turn is not None and o.handoff_turn != o.explicit_turn)
        or o.wrong_answers
    ]
    if misses:
        lines.append("\nMisses:")
        for o in misses:
            what = o.error or (
                f"expected by turn {o.latest_turn}, escalated at {o.escalated_turn}"
                if o.expect_handoff
                else f"routine, escalated at turn {o.escalated_turn}"
                if o.escalated
                else f"wrong answers {o.wrong_answers} (expected {o.expect_topic})"
            )
            lines.append(f"  {o.id}: {what}")
            for t in o.transcript:
                lines.append(
                    f"      > {t['customer']!r} -> {t['replies']} {t['decision']} {t['reasons']}"
                )
    return "\n".join(lines)


def _meets(value: float | None, target: float) -> bool:
    return value is not None and value >= target


async def run(
    rasa_url: str,
    concurrency: int,
    only: str | None,
    parts: list[str] | None = None,
    token: str | None = None,
) -> list[Outcome]:
    conversations = [c for c in load_parts(parts or ["main"]) if not only or only in c.id]
    run_id = uuid.uuid4().hex[:8]
    limit = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        bot = Bot(session, rasa_url, token)

        async def one(conv: Conversation) -> Outcome:
            async with limit:
                return await replay(bot, conv, run_id)

        return await asyncio.gather(*(one(c) for c in conversations))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rasa-url", default="http://127.0.0.1:5005")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--only", help="replay only conversations whose id contains this")
    parser.add_argument("--json", type=Path, help="also write figures and outcomes here")
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help="comma-separated parts to replay and score: main, dev, heldout, fresh (default: all)",
    )
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; use {', '.join(PARTS)}")
    started = time.monotonic()
    token = get_settings().rasa_auth_token  # RASA_AUTH_TOKEN, or the launcher's var/secrets
    outcomes = asyncio.run(
        run(
            args.rasa_url,
            args.concurrency,
            args.only,
            parts,
            token.get_secret_value() if token else None,
        )
    )
    figures = score_parts(outcomes)
    for part, part_figures in figures.items():
        if part == "all" and len(figures) == 2:
            continue  # one part: "all" is the same
        print(f"\n== {part} ==")
        print(report(part_figures, [o for o in outcomes if part in ("all", o.part)]))
    print(f"\n({time.monotonic() - started:.0f} s)")
    if args.json:
        args.json.write_text(
            json.dumps({"figures": figures, "outcomes": [asdict(o) for o in outcomes]}, indent=2)
        )
    return 0 if figures["all"]["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
