"""Policy replay: run a changed escalation policy in shadow over recorded conversations.

Before the support lead deploys an edited ``escalation_policy.yml``, every recorded customer turn
is replayed through the real signal code and the real policy (:func:`bot.signals.observe` and
:func:`bot.escalation.evaluate`) twice: with the policy in force and with the candidate. Each
turn is rebuilt exactly as the action server saw it (text, intent, confidence, ranking and the
bot's reply tags before it, from Rasa's event record); its handoff mode (``bot``, ``waiting``,
``agent``) comes from the conversation's tickets.

A conversation is *changed* when the first turn on which a person would be offered or handed the
conversation differs. Only the first divergence is exact: after it the real conversation would
have gone differently, and the replay keeps following what the customer actually said.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bot.analytics.records import ConversationRecord
from bot.escalation import Policy, PolicyError, Verdict, evaluate, load_policy
from bot.signals import SignalState, SignalTurn, observe


@dataclass(frozen=True)
class Trajectory:
    """When a policy offers a person and hands off in one conversation (turn numbers, 1-based)."""

    first_offer: int | None
    first_handoff: int | None
    reasons: tuple[str, ...]  # reason codes of the first handoff (else of the first offer)


@dataclass(frozen=True)
class ReplayRow:
    conversation_id: str
    topic: str | None
    turns: int
    current: Trajectory
    candidate: Trajectory
    change: str

    def as_dict(self) -> dict:
        return asdict(self)


def _mode_at(record: ConversationRecord, at: float) -> str:
    for ticket in record.tickets:
        closed = ticket.closed_at if ticket.closed_at is not None else float("inf")
        if ticket.created_at < at < closed:
            return (
                "agent" if ticket.assigned_at is not None and ticket.assigned_at < at else "waiting"
            )
    return "bot"


def trajectory(record: ConversationRecord, policy: Policy) -> Trajectory:
    """Replay every customer turn of ``record`` under ``policy``."""
    config = policy.signal_config()
    state = SignalState()
    first_offer = first_handoff = None
    reasons: tuple[str, ...] = ()
    for message in record.messages:
        turn = SignalTurn(
            text=message.text,
            intent=message.intent,
            confidence=message.confidence or 0.0,
            ranking=list(message.ranking),
            bot_replies=list(message.replies_before),
        )
        signals, state = observe(state, turn, config)
        signals = signals.copy(update={"mode": _mode_at(record, message.at)})
        decision = evaluate(signals, policy)
        if decision.action == Verdict.handoff and first_handoff is None:
            first_handoff, reasons = signals.turn, tuple(decision.reasons)
        elif decision.action == Verdict.offer and first_offer is None:
            first_offer = signals.turn
            reasons = reasons or tuple(decision.reasons)
    return Trajectory(first_offer, first_handoff, reasons)


def classify(current: Trajectory, candidate: Trajectory) -> str:
    """How the candidate escalates the conversation compared with the policy in force."""
    now, then = current.first_handoff, candidate.first_handoff
    if now is None and then is not None:
        return "newly_handed_off"
    if now is not None and then is None:
        return "no_longer_handed_off"
    if now is not None and then is not None and now != then:
        return "handed_off_earlier" if then < now else "handed_off_later"
    if current.first_offer != candidate.first_offer:
        if current.first_offer is None:
            return "newly_offered"
        if candidate.first_offer is None:
            return "no_longer_offered"
        return "offered_earlier" if candidate.first_offer < current.first_offer else "offered_later"
    return "same"


@dataclass(frozen=True)
class Replay:
    conversations: int
    changed: list[ReplayRow]

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(row.change for row in self.changed).most_common())

    def as_dict(self) -> dict:
        return {
            "conversations": self.conversations,
            "changed": len(self.changed),
            "counts": self.counts,
            "rows": [row.as_dict() for row in self.changed],
        }


def replay(records: Sequence[ConversationRecord], current: Policy, candidate: Policy) -> Replay:
    """The conversations the candidate policy would have escalated differently."""
    changed: list[ReplayRow] = []
    for record in records:
        if not record.messages:
            continue
        now, then = trajectory(record, current), trajectory(record, candidate)
        change = classify(now, then)
        if change != "same":
            changed.append(
                ReplayRow(
                    record.conversation_id, record.topic, len(record.messages), now, then, change
                )
            )
    return Replay(sum(bool(r.messages) for r in records), changed)


def main(argv: list[str] | None = None) -> None:
    from bot.analytics.collect import collect_or_exit
    from bot.analytics.period import add_period_arguments, period_of
    from bot.config import get_settings

    parser = argparse.ArgumentParser(description="Replay a candidate escalation policy in shadow.")
    parser.add_argument("candidate", type=Path, help="the edited policy file")
    parser.add_argument("--current", type=Path, default=get_settings().escalation_policy)
    add_period_arguments(parser)
    args = parser.parse_args(argv)
    start, end = period_of(parser, args)
    try:
        current, candidate = load_policy(args.current), load_policy(args.candidate)
    except PolicyError as error:
        parser.exit(1, f"error: {error}\n")
    everything = collect_or_exit(parser)
    records = [r for r in everything if start <= r.started_at < end]
    result = replay(records, current, candidate)
    print(
        f"{result.conversations} conversations replayed, {len(result.changed)} escalated differently"
    )
    for change, n in result.counts.items():
        print(f"  {change:22} {n}")
    for row in result.changed[:50]:
        print(
            f"  {row.conversation_id:24} {row.change:22} handoff turn "
            f"{row.current.first_handoff} -> {row.candidate.first_handoff}, offer turn "
            f"{row.current.first_offer} -> {row.candidate.first_offer} {','.join(row.candidate.reasons)}"
        )


if __name__ == "__main__":
    main()
