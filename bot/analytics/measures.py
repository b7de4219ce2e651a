"""The quality measures: pure functions over conversation records.

Each function's docstring is the measure's definition (``docs/analytics.md`` collects them). A
rate is returned as a :class:`Ratio` (numerator, denominator) so a reader sees how many
conversations stand behind it; its ``rate`` is ``None`` when there is nothing to divide by.
Conversations belong to the day (UTC) and period in which they started.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone

from bot.analytics.records import ConversationRecord, TicketRecord

NEGATIVE_SENTIMENT = -0.05  # VADER's own threshold for a negative compound score
LOW_RATING = 2  # 1 or 2 out of 5
SATISFIED_RATING = 4  # 4 or 5 out of 5
REPEAT_WINDOW_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Ratio:
    numerator: int
    denominator: int

    @property
    def rate(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None

    def as_dict(self) -> dict:
        rate = self.rate
        return {**asdict(self), "rate": None if rate is None else round(rate, 4)}


@dataclass(frozen=True)
class Durations:
    """Summary of a set of durations in seconds."""

    count: int
    median: float | None
    p90: float | None
    mean: float | None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Durations:
        if not seconds:
            return cls(0, None, None, None)
        ordered = sorted(seconds)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        return cls(
            len(ordered),
            round(statistics.median(ordered), 2),
            round(p90, 2),
            round(statistics.fmean(ordered), 2),
        )


def day_of(timestamp: float) -> date:
    return datetime.fromtimestamp(timestamp, timezone.utc).date()


def in_period(
    records: Iterable[ConversationRecord],
    start: float | None = None,
    end: float | None = None,
    topic: str | None = None,
) -> list[ConversationRecord]:
    """Conversations started in [start, end), optionally only those that raised ``topic``."""
    return [
        r
        for r in records
        if (start is None or r.started_at >= start)
        and (end is None or r.started_at < end)
        and (topic is None or topic in r.topics or any(t.topic == topic for t in r.tickets))
    ]


def conversations(records: Sequence[ConversationRecord]) -> int:
    """Conversations: every conversation that started in the period (one per conversation id)."""
    return len(records)


def contained(record: ConversationRecord) -> bool:
    """Resolved by the bot: no handoff was requested and the customer did not leave mid-problem."""
    return record.bot_only and not record.left_mid_problem


def containment(records: Sequence[ConversationRecord]) -> Ratio:
    """Containment: conversations resolved by the bot (no handoff requested, customer did not
    leave mid-problem) / all conversations."""
    return Ratio(sum(contained(r) for r in records), len(records))


def falsely_contained(record: ConversationRecord) -> bool:
    """A bot-only conversation that looks contained but did not serve the customer: it ended with
    a "didn't help", its last typed customer message was negative (VADER compound <= -0.05), it
    was rated 1 or 2, or the customer left mid-problem."""
    if not record.bot_only:
        return False
    final = record.final_sentiment
    return (
        record.ended_didnt_help
        or (final is not None and final <= NEGATIVE_SENTIMENT)
        or (record.rating is not None and record.rating <= LOW_RATING)
        or record.left_mid_problem
    )


def false_containment(records: Sequence[ConversationRecord]) -> Ratio:
    """False containment: bot-only conversations that ended with a "didn't help", negative
    sentiment, a rating of 1-2 or the customer leaving mid-problem / all bot-only conversations."""
    bot_only = [r for r in records if r.bot_only]
    return Ratio(sum(falsely_contained(r) for r in bot_only), len(bot_only))


def escalation_rate(records: Sequence[ConversationRecord]) -> Ratio:
    """Escalation rate: conversations with a handoff (a ticket or a handoff decision) / all."""
    return Ratio(sum(r.handoff_requested for r in records), len(records))


def escalation_reasons(records: Sequence[ConversationRecord]) -> dict[str, Ratio]:
    """Split by reason code: escalated conversations carrying each code / escalated conversations.
    A handoff can carry several codes, so the shares may add up to more than 100 %."""
    escalated = [r for r in records if r.handoff_requested]
    counts = Counter(code for r in escalated for code in r.reason_codes)
    return {code: Ratio(n, len(escalated)) for code, n in counts.most_common()}


def _tickets(records: Sequence[ConversationRecord]) -> list[TicketRecord]:
    return [t for r in records for t in r.tickets]


def time_to_first_agent_reply(records: Sequence[ConversationRecord]) -> Durations:
    """Time to first agent reply: from a ticket's creation to the first message an agent sent on
    it, over tickets that got one (seconds: median, 90th percentile, mean)."""
    return Durations.of(
        [t.first_reply_seconds for t in _tickets(records) if t.first_reply_seconds is not None]
    )


def agent_handle_time(records: Sequence[ConversationRecord]) -> Durations:
    """Agent handle time: from a ticket's (first) assignment to its close (resolved, handed back
    to the bot or abandoned), over closed tickets an agent took."""
    return Durations.of(
        [t.handle_seconds for t in _tickets(records) if t.handle_seconds is not None]
    )


def abandonment_while_waiting(records: Sequence[ConversationRecord]) -> Ratio:
    """Abandonment while waiting: tickets the customer abandoned before any agent took them /
    all tickets."""
    tickets = _tickets(records)
    return Ratio(sum(t.abandoned_waiting for t in tickets), len(tickets))


@dataclass(frozen=True)
class Csat:
    """Satisfaction of one group of conversations."""

    conversations: int
    offered: int
    rated: int
    mean: float | None
    satisfied: Ratio

    @property
    def response_rate(self) -> Ratio:
        return Ratio(self.rated, self.offered)

    def as_dict(self) -> dict:
        return {
            "conversations": self.conversations,
            "offered": self.offered,
            "rated": self.rated,
            "mean": self.mean,
            "satisfied": self.satisfied.as_dict(),
            "response_rate": self.response_rate.as_dict(),
        }


def csat(records: Sequence[ConversationRecord]) -> Csat:
    """CSAT of a group: mean rating (1-5) and share of ratings of 4-5 ("satisfied"), over rated
    conversations; response rate: rated conversations / conversations asked for a rating."""
    ratings = [r.rating for r in records if r.rating is not None]
    return Csat(
        conversations=len(records),
        offered=sum(r.survey_offered for r in records),
        rated=len(ratings),
        mean=round(statistics.fmean(ratings), 2) if ratings else None,
        satisfied=Ratio(sum(s >= SATISFIED_RATING for s in ratings), len(ratings)),
    )


def csat_by_path(records: Sequence[ConversationRecord]) -> dict[str, Csat]:
    """CSAT for bot-only conversations versus conversations an agent handled."""
    return {
        "bot_only": csat([r for r in records if r.bot_only]),
        "agent_handled": csat([r for r in records if r.agent_handled]),
    }


def csat_coverage(records: Sequence[ConversationRecord]) -> Ratio:
    """CSAT coverage: conversations with a rating / all conversations."""
    return Ratio(sum(r.rating is not None for r in records), len(records))


@dataclass(frozen=True)
class IntentRow:
    intent: str
    volume: int
    fallback: Ratio
    didnt_help: Ratio
    escalation: Ratio

    @property
    def problem_score(self) -> float:
        """Mean of the three rates (missing rates count as 0): the sort key, worst first."""
        rates = [self.fallback.rate, self.didnt_help.rate, self.escalation.rate]
        return sum(rate or 0.0 for rate in rates) / 3

    def as_dict(self) -> dict:
        return {
            "intent": self.intent,
            "volume": self.volume,
            "fallback": self.fallback.as_dict(),
            "didnt_help": self.didnt_help.as_dict(),
            "escalation": self.escalation.as_dict(),
            "problem_score": round(self.problem_score, 4),
        }


def per_intent(records: Sequence[ConversationRecord]) -> list[IntentRow]:
    """Per intent (topic): volume = customer messages about it (a message that fell back counts
    for its best-ranked real intent); fallback rate = those messages that fell back / volume;
    "didn't help" rate = "no" answers to "did that help?" about its answer / all answers about
    it; escalation rate = conversations raising it that were handed off / conversations raising
    it. Sorted worst-served first by the mean of the three rates, then by volume."""
    volume: Counter[str] = Counter()
    fallbacks: Counter[str] = Counter()
    answers: Counter[str] = Counter()
    noes: Counter[str] = Counter()
    raised: Counter[str] = Counter()
    escalated: Counter[str] = Counter()
    for record in records:
        for message in record.messages:
            if message.topic:
                volume[message.topic] += 1
                fallbacks[message.topic] += message.fell_back
        for answer in record.help_answers:
            if answer.topic:
                answers[answer.topic] += 1
                noes[answer.topic] += not answer.helped
        for topic in record.topics:
            raised[topic] += 1
            escalated[topic] += record.handoff_requested
    rows = [
        IntentRow(
            intent,
            volume[intent],
            Ratio(fallbacks[intent], volume[intent]),
            Ratio(noes[intent], answers[intent]),
            Ratio(escalated[intent], raised[intent]),
        )
        for intent in volume
    ]
    return sorted(rows, key=lambda row: (-row.problem_score, -row.volume, row.intent))


def escalation_labels(records: Sequence[ConversationRecord]) -> dict[str, Ratio]:
    """Escalation quality from the agents' one-click labels on the tickets they handled.

    - ``unnecessary``: labelled "the bot should have solved it" / labelled tickets;
    - ``missed``: labelled "escalated too late" (the bot missed the moment) / labelled tickets;
    - ``new_topic``: labelled "new topic" / labelled; ``correct``: labelled "correct" / labelled;
    - ``coverage``: labelled tickets / tickets an agent handled.
    """
    handled = [t for t in _tickets(records) if t.handled]
    labels = Counter(t.label for t in handled if t.label)
    labelled = sum(labels.values())
    return {
        "unnecessary": Ratio(labels["bot_should_have_solved"], labelled),
        "missed": Ratio(labels["too_late"], labelled),
        "new_topic": Ratio(labels["new_topic"], labelled),
        "correct": Ratio(labels["correct"], labelled),
        "coverage": Ratio(labelled, len(handled)),
    }


def repeat_contact(record: ConversationRecord, later: Iterable[ConversationRecord]) -> bool:
    """The same customer came back on the same topic within 7 days after the conversation."""
    topic = record.topic
    if topic is None:
        return False
    for other in later:
        if other.conversation_id == record.conversation_id:
            continue
        if other.customer_key != record.customer_key:
            continue
        if record.ended_at < other.started_at <= record.ended_at + REPEAT_WINDOW_SECONDS:
            if topic in other.topics or any(t.topic == topic for t in other.tickets):
                return True
    return False


def durable_resolution(
    records: Sequence[ConversationRecord], everything: Sequence[ConversationRecord]
) -> Ratio:
    """Durable resolution: contained conversations whose customer did not contact us again on the
    same topic within 7 days (looked up in ``everything``, not only the period) / contained
    conversations. Conversations younger than 7 days are provisional."""
    by_customer: dict[str, list[ConversationRecord]] = defaultdict(list)
    for other in everything:
        by_customer[other.customer_key].append(other)
    resolved = [r for r in records if contained(r)]
    durable = sum(not repeat_contact(r, by_customer[r.customer_key]) for r in resolved)
    return Ratio(durable, len(resolved))
