"""The durable per-conversation record: one conversation's events folded into one object.

:func:`build_records` takes events from every source (see :mod:`bot.analytics.events`), groups
them by conversation and folds each group, in time order, into a :class:`ConversationRecord`.
It is a pure function: the same events always give the same records, and since the events are
read from durable stores (never from a process's memory) a restart changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.analytics.events import (
    CLOSING_INTENTS,
    AgentMessage,
    BotMessage,
    CustomerMessage,
    EscalationLabel,
    Event,
    HelpAnswer,
    Rating,
    SurveyOffered,
    TicketChange,
    TurnDecision,
)

OPEN_TICKET_STATES = frozenset({"queued", "assigned"})


@dataclass
class TicketRecord:
    """One handoff ticket's life, from the queue's audit stream and message log."""

    ticket_id: str
    created_at: float
    state: str = "queued"
    reason_codes: tuple[str, ...] = ()
    priority: int | None = None
    topic: str | None = None
    assigned_at: float | None = None
    first_agent_reply_at: float | None = None
    closed_at: float | None = None
    agent_id: str | None = None
    disposition: str | None = None
    label: str | None = None

    @property
    def handled(self) -> bool:
        """An agent took it (it was assigned at least once)."""
        return self.assigned_at is not None

    @property
    def abandoned_waiting(self) -> bool:
        """The customer left before any agent took the ticket."""
        return self.state == "abandoned" and self.assigned_at is None

    @property
    def first_reply_seconds(self) -> float | None:
        if self.first_agent_reply_at is None:
            return None
        return self.first_agent_reply_at - self.created_at

    @property
    def handle_seconds(self) -> float | None:
        if self.assigned_at is None or self.closed_at is None:
            return None
        return self.closed_at - self.assigned_at


@dataclass
class ConversationRecord:
    """Everything known about one conversation, joined from every durable source."""

    conversation_id: str
    started_at: float
    ended_at: float
    customer_id: str | None = None
    messages: list[CustomerMessage] = field(default_factory=list)
    help_answers: list[HelpAnswer] = field(default_factory=list)
    decisions: list[TurnDecision] = field(default_factory=list)
    tickets: list[TicketRecord] = field(default_factory=list)
    rating: int | None = None
    rating_comment: str = ""
    survey_offered: bool = False
    bot_messages: int = 0
    open_problem_at_end: bool = False

    @property
    def customer_key(self) -> str:
        """Who the customer is, for repeat contacts: their id, else the conversation."""
        return self.customer_id or self.conversation_id

    @property
    def handoff_requested(self) -> bool:
        """The policy decided to hand off on some turn, or a ticket exists."""
        return bool(self.tickets) or any(d.action == "handoff" for d in self.decisions)

    @property
    def bot_only(self) -> bool:
        """No handoff was ever requested: the bot alone served the customer."""
        return not self.handoff_requested

    @property
    def agent_handled(self) -> bool:
        return any(t.handled for t in self.tickets)

    @property
    def reason_codes(self) -> tuple[str, ...]:
        """Reason codes of every handoff (tickets first, then handoff decisions), de-duplicated."""
        codes: list[str] = []
        for ticket in self.tickets:
            codes.extend(ticket.reason_codes)
        for decision in self.decisions:
            if decision.action == "handoff":
                codes.extend(decision.reason_codes)
        return tuple(dict.fromkeys(codes))

    @property
    def topics(self) -> list[str]:
        """The routine topics the customer raised, in order, without repeats."""
        return list(dict.fromkeys(m.topic for m in self.messages if m.topic))

    @property
    def topic(self) -> str | None:
        """The conversation's topic: the first one raised, else the first ticket's topic."""
        topics = self.topics
        if topics:
            return topics[0]
        return next((t.topic for t in self.tickets if t.topic), None)

    @property
    def fallbacks(self) -> int:
        return sum(m.fell_back for m in self.messages)

    @property
    def didnt_help(self) -> int:
        return sum(not a.helped for a in self.help_answers)

    @property
    def ended_didnt_help(self) -> bool:
        """The last "did that help?" answer was no."""
        return bool(self.help_answers) and not self.help_answers[-1].helped

    @property
    def sentiments(self) -> list[float]:
        return [m.sentiment for m in self.messages if m.sentiment is not None and m.text]

    @property
    def final_sentiment(self) -> float | None:
        scores = self.sentiments
        return scores[-1] if scores else None

    @property
    def left_mid_problem(self) -> bool:
        """The customer went away with a problem open: see :func:`build_record`."""
        if any(t.abandoned_waiting for t in self.tickets):
            return True
        return self.bot_only and self.open_problem_at_end


def _apply(record: ConversationRecord, event: Event, tickets: dict[str, TicketRecord]) -> None:
    match event:
        case CustomerMessage():
            record.messages.append(event)
            record.customer_id = record.customer_id or event.customer_id
            if event.fell_back:
                record.open_problem_at_end = True
            elif event.intent in CLOSING_INTENTS or event.topic:
                record.open_problem_at_end = False
        case BotMessage():
            record.bot_messages += 1
        case HelpAnswer():
            record.help_answers.append(event)
            record.open_problem_at_end = not event.helped
        case TurnDecision():
            record.decisions.append(event)
            if event.action == "offer":
                record.open_problem_at_end = True
        case TicketChange():
            _apply_ticket(record, event, tickets)
        case AgentMessage():
            ticket = tickets.get(event.ticket_id)
            if ticket is not None and ticket.first_agent_reply_at is None:
                ticket.first_agent_reply_at = event.at
        case SurveyOffered():
            record.survey_offered = True
        case Rating():
            record.survey_offered = True
            if event.score is not None:
                record.rating = event.score
            record.rating_comment = event.comment or record.rating_comment
        case EscalationLabel():
            ticket = tickets.get(event.ticket_id)
            if ticket is not None:
                ticket.label = event.label


def _apply_ticket(
    record: ConversationRecord, event: TicketChange, tickets: dict[str, TicketRecord]
) -> None:
    ticket = tickets.get(event.ticket_id)
    if ticket is None:
        ticket = TicketRecord(ticket_id=event.ticket_id, created_at=event.at)
        tickets[event.ticket_id] = ticket
        record.tickets.append(ticket)
    ticket.state = event.state
    ticket.reason_codes = event.reason_codes or ticket.reason_codes
    ticket.priority = event.priority if event.priority is not None else ticket.priority
    ticket.topic = event.topic or ticket.topic
    ticket.disposition = event.disposition or ticket.disposition
    if event.state == "assigned":
        ticket.assigned_at = ticket.assigned_at or event.at
        ticket.agent_id = event.agent_id or ticket.agent_id
    if event.state in OPEN_TICKET_STATES:
        ticket.closed_at = None
    else:
        ticket.closed_at = event.at
    if event.state == "returned_to_bot":
        record.open_problem_at_end = False


_ORDER = {CustomerMessage: 0, HelpAnswer: 1, TurnDecision: 2, TicketChange: 3}


def _sort_key(event: Event) -> tuple[float, int]:
    return (event.at, _ORDER.get(type(event), 4))


def build_record(conversation_id: str, events: Iterable[Event]) -> ConversationRecord:
    """Fold one conversation's events, in time order, into its record.

    Whether a problem is open at the end is tracked turn by turn: a message that fell back, a
    "didn't help" answer or a person offered opens it; a message the bot answered on a routine
    topic, a "yes, that helped", a goodbye/thanks or a ticket handed back to the bot closes it.
    """
    ordered = sorted(events, key=_sort_key)
    if not ordered:
        raise ValueError(f"no events for conversation {conversation_id}")
    record = ConversationRecord(
        conversation_id=conversation_id, started_at=ordered[0].at, ended_at=ordered[-1].at
    )
    tickets: dict[str, TicketRecord] = {}
    for event in ordered:
        _apply(record, event, tickets)
    return record


CONTACT_GAP_SECONDS = 30 * 60


def _contacts(events: list[Event]) -> list[list[Event]]:
    """Split one conversation id's events into contacts at gaps of more than 30 minutes.

    The widget keeps a conversation id across page reloads and visits, so a customer who comes
    back days later continues the same id: that is a new contact (and a repeat contact when it is
    on the same topic). No split while a ticket is open; labels belong to the contact that holds
    their ticket.
    """
    activity = sorted((e for e in events if not isinstance(e, EscalationLabel)), key=_sort_key)
    contacts: list[list[Event]] = []
    last = None
    open_tickets: set[str] = set()  # a ticket waiting or with an agent keeps the contact going
    for event in activity:
        if last is None or (event.at - last > CONTACT_GAP_SECONDS and not open_tickets):
            contacts.append([])
        contacts[-1].append(event)
        last = event.at
        if isinstance(event, TicketChange):
            if event.state in OPEN_TICKET_STATES:
                open_tickets.add(event.ticket_id)
            else:
                open_tickets.discard(event.ticket_id)
    for label in (e for e in events if isinstance(e, EscalationLabel)):
        home = next(
            (
                c
                for c in contacts
                if any(isinstance(e, TicketChange) and e.ticket_id == label.ticket_id for e in c)
            ),
            None,
        )
        if home is not None:
            home.append(label)
    return contacts


def build_records(events: Iterable[Event]) -> list[ConversationRecord]:
    """Records for every contact the events mention, oldest first.

    A conversation id's first contact keeps the id; later ones (see :func:`_contacts`) get
    ``<id>~2``, ``<id>~3`` ... and the id as their customer when no customer id is known.
    """
    grouped: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        grouped[event.conversation_id].append(event)
    records = []
    for cid, group in grouped.items():
        for number, contact in enumerate(_contacts(group), start=1):
            record = build_record(cid if number == 1 else f"{cid}~{number}", contact)
            record.customer_id = record.customer_id or (cid if number > 1 else None)
            records.append(record)
    return sorted(records, key=lambda r: (r.started_at, r.conversation_id))
