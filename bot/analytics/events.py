"""Typed events: what every analytics source is translated into before anything is measured.

Each durable source (Rasa's SQL event broker, the queue's audit stream and message logs, the
satisfaction answers, the agents' escalation labels) has an adapter in :mod:`bot.analytics.sources`
that yields these events. Records and measures only ever see this model, so a measure can be
checked on a hand-written sequence of events and gives the same answer on recorded ones.

Times are Unix seconds (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot import escalation

# Intents that carry no customer topic: they steer the conversation (the escalation policy's set,
# plus leaving contact details).
CONVERSATIONAL_INTENTS = escalation.CONVERSATIONAL_INTENTS | {"leave_contact"}
FALLBACK_INTENTS = frozenset({"nlu_fallback", "out_of_scope"})
CLOSING_INTENTS = frozenset({"goodbye", "thanks"})


@dataclass(frozen=True)
class CustomerMessage:
    """A customer turn as the bot understood it.

    ``candidate`` is the best real intent (the top of the ranking below ``nlu_fallback``), so a
    message that fell back is still counted against the topic it was probably about. ``ranking``
    and ``replies_before`` (reply tags of the bot's messages since the customer's previous one)
    let a policy replay rebuild the turn exactly as the escalation signals saw it.
    """

    at: float
    conversation_id: str
    text: str
    intent: str | None
    confidence: float | None = None
    candidate: str | None = None
    sentiment: float | None = None
    customer_id: str | None = None
    ranking: tuple[tuple[str, float], ...] = field(default=(), compare=False)
    # reply tags of the bot's messages since the customer's previous message
    replies_before: tuple[str, ...] = field(default=(), compare=False)
    prompted: bool = False  # an answer to the bot's own question (a rating comment, an email)

    @property
    def fell_back(self) -> bool:
        return self.intent in FALLBACK_INTENTS and not self.prompted

    @property
    def topic(self) -> str | None:
        """The routine topic this message is about, if any (out_of_scope counts as a topic)."""
        if self.prompted:
            return None
        if self.intent == "out_of_scope":
            return "out_of_scope"
        name = self.candidate or self.intent
        if name is None or name in CONVERSATIONAL_INTENTS or name == "nlu_fallback":
            return None
        return name


@dataclass(frozen=True)
class BotMessage:
    """Something the bot said."""

    at: float
    conversation_id: str
    text: str = ""


@dataclass(frozen=True)
class HelpAnswer:
    """The customer's answer to "Did that answer your question?" (``topic``: the answer asked about)."""

    at: float
    conversation_id: str
    helped: bool
    topic: str | None = None


@dataclass(frozen=True)
class TurnDecision:
    """The escalation policy's verdict on one customer turn, with the signals it saw.

    ``action`` is ``none``, ``offer`` (a person offered) or ``handoff`` (a ticket created).
    """

    at: float
    conversation_id: str
    action: str
    reason_codes: tuple[str, ...] = ()
    signals: dict = field(default_factory=dict, hash=False, compare=False)
    turn: int | None = None


@dataclass(frozen=True)
class TicketChange:
    """A state change of a handoff ticket, from the queue's audit stream.

    ``state`` is the state entered: queued, assigned, resolved, returned_to_bot or abandoned
    (``transferred``/``requeued`` re-enter queued).
    """

    at: float
    conversation_id: str
    ticket_id: str
    state: str
    reason_codes: tuple[str, ...] = ()
    priority: int | None = None
    topic: str | None = None
    agent_id: str | None = None
    disposition: str | None = None


@dataclass(frozen=True)
class AgentMessage:
    """A message an agent sent to the customer."""

    at: float
    conversation_id: str
    ticket_id: str
    agent_id: str | None = None


@dataclass(frozen=True)
class Rating:
    """A satisfaction answer: 1-5 and an optional comment. ``offered`` events have no score."""

    at: float
    conversation_id: str
    score: int | None
    comment: str = ""


@dataclass(frozen=True)
class SurveyOffered:
    """The customer was asked for a rating."""

    at: float
    conversation_id: str


@dataclass(frozen=True)
class EscalationLabel:
    """An agent's one-click verdict on a ticket it handled (see :data:`LABELS`)."""

    at: float
    conversation_id: str
    ticket_id: str
    label: str
    agent_id: str | None = None


LABELS = {
    "correct": "correct escalation",
    "bot_should_have_solved": "the bot should have solved it",
    "too_late": "escalated too late",
    "new_topic": "new topic the bot does not know",
}

Event = (
    CustomerMessage
    | BotMessage
    | HelpAnswer
    | TurnDecision
    | TicketChange
    | AgentMessage
    | Rating
    | SurveyOffered
    | EscalationLabel
)
