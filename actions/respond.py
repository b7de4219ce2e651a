"""`action_respond`: the one action that handles every customer turn.

Rules (`data/rules/respond.yml`) send every intent, `out_of_scope` and `nlu_fallback` here.
`run` reads the turn and hands it to `answer`, which picks what to say:

- a routine (banking) intent: its answer, then "Did that answer your question?";
- affirm / deny: if the bot just asked whether its answer helped, glad / sorry with an offer to
  rephrase or talk to a person; otherwise a plain acknowledgement;
- greet, goodbye, thanks, bot_challenge: their reply; request_human: a person is offered;
- out_of_scope: an honest "I can't help with that" and what the bot does cover;
- nlu_fallback (or anything unknown): never a guess, but a request to rephrase with the closest
  routine topics as buttons, and a person; the same for a routine intent predicted for an
  unfamiliar message (far from that intent's training examples) and for a short follow-up on the
  topic just answered that the NLU reads as some other topic;
- two topics too close to tell apart (`ambiguous`): "did you mean A or B?" with both as buttons,
  "something else" and a person; not a failed turn;
- never the same answer twice: an answer already given in the conversation is not given again
  (the customer restating the need means it did not solve it); the bot says so and offers a
  person, unless the customer asks for it again ("can you repeat that", the topic's button, or
  a new question on a topic whose answer they confirmed helped).

`run` first passes the turn through the escalation gate (`actions/escalation.py`): it measures
the turn, asks the escalation policy, records the audit entry, and then calls `answer`, offers a
person, hands off, or stays silent while an agent holds the conversation.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.context import Answer
from actions.escalation import EscalationGate
from actions.escalation_messages import OFFER_TAG
from actions.escalation_messages import say as say_escalation
from actions.responses import Button, Message, Responses, get_responses
from actions.topics import closest_topics
from actions.turn import REPLY_KEY, TrackerTurn, answer_tag, read_turn

FALLBACK_INTENT = "nlu_fallback"
TALK_TO_A_PERSON = Button(title="Talk to a person", payload="/request_human")
SOMETHING_ELSE = Button(title="Something else", payload=f"/{FALLBACK_INTENT}")
SIMPLE_REPLIES = {
    "greet": "greet",
    "goodbye": "goodbye",
    "thanks": "thanks",
    "bot_challenge": "bot_challenge",
    "request_human": "human_requested",
    "out_of_scope": "out_of_scope",
}

Handler = Answer  # one way of answering a turn


def say(dispatcher: CollectingDispatcher, message: Message, tag: str) -> None:
    """Send one message, tagged so later turns know what the bot said."""
    dispatcher.utter_message(
        text=message.text,
        buttons=[button.as_dict() for button in message.buttons],
        **{REPLY_KEY: tag},
    )


class ActionRespond(Action):
    def __init__(
        self, responses: Responses | None = None, gate: EscalationGate | None = None
    ) -> None:
        self._responses = responses
        self._gate = gate or EscalationGate()

    @property
    def responses(self) -> Responses:
        return self._responses or get_responses()

    def name(self) -> str:
        return "action_respond"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        return await self._gate.handle(read_turn(tracker), tracker, dispatcher, self.answer)

    def answer(self, turn: TrackerTurn, dispatcher: CollectingDispatcher) -> list[EventType]:
        """Reply to the turn; returns the events to apply (none yet)."""
        return self.handler_for(turn.intent)(turn, dispatcher)

    def handler_for(self, intent: str) -> Handler:
        if self.responses.answer(intent) is not None:
            return self.answer_routine
        if intent in SIMPLE_REPLIES:
            return self.reply_simply
        if intent == "affirm":
            return self.reply_affirm
        if intent == "deny":
            return self.reply_deny
        return self.ask_to_rephrase

    def answer_routine(
        self, turn: TrackerTurn, dispatcher: CollectingDispatcher
    ) -> list[EventType]:
        if turn.unfamiliar or (turn.kept_topic and not turn.restated and not turn.repeat_request):
            return self.ask_to_rephrase(turn, dispatcher)
        if turn.ambiguous and self.clarify(turn, dispatcher):
            return []
        if self.repeats_an_answer(turn):
            # never the same answer twice: it did not solve it, so offer a person instead
            say_escalation(dispatcher, "offer_repeated_answer", tag=OFFER_TAG)
            return []
        answer = self.responses.answer(turn.intent)
        assert answer is not None
        say(dispatcher, answer.message, answer_tag(turn.intent))
        say(dispatcher, self.responses.reply("did_that_help"), "did_that_help")
        return []

    def repeats_an_answer(self, turn: TrackerTurn) -> bool:
        """Whether answering would repeat an answer already given in this conversation, unless
        the customer asks for it again: in words, with the topic's button, or with a new
        question on a topic whose answer they confirmed helped."""
        return (
            self._gate.policy.context.never_repeat_answer
            and answer_tag(turn.intent) in turn.given_answers
            and not turn.repeat_request
            and not turn.topic_helped
            and not turn.text.startswith("/")
        )

    def clarify(self, turn: TrackerTurn, dispatcher: CollectingDispatcher) -> bool:
        """ "Did you mean A or B?" for a turn whose top two topics are too close to answer either:
        both as buttons (the payload asks that intent), then "something else" and a person.
        False (nothing said) when fewer than two of them have an answer."""
        ranking = sorted(turn.ranking, key=lambda item: -item[1])[:2]
        topics = closest_topics(ranking, self.responses, limit=2, min_confidence=0.0)
        if len(topics) < 2:
            return False
        message = self.responses.reply("clarify")
        text = message.text.format(first=topics[0].title, second=topics[1].title)
        buttons = (*topics, SOMETHING_ELSE, TALK_TO_A_PERSON)
        say(dispatcher, Message(text, message.buttons + buttons), "clarify")
        return True

    def reply_simply(self, turn: TrackerTurn, dispatcher: CollectingDispatcher) -> list[EventType]:
        name = SIMPLE_REPLIES[turn.intent]
        say(dispatcher, self.responses.reply(name), name)
        return []

    def reply_affirm(self, turn: TrackerTurn, dispatcher: CollectingDispatcher) -> list[EventType]:
        name = "glad_it_helped" if turn.bot_asked("did_that_help") else "acknowledge"
        say(dispatcher, self.responses.reply(name), name)
        return []

    def reply_deny(self, turn: TrackerTurn, dispatcher: CollectingDispatcher) -> list[EventType]:
        if turn.bot_asked("clarify"):  # "no" to "did you mean A or B?": neither
            return self.ask_to_rephrase(turn, dispatcher)
        name = "offer_human" if turn.bot_asked("did_that_help") else "decline_noted"
        say(dispatcher, self.responses.reply(name), name)
        return []

    def ask_to_rephrase(
        self, turn: TrackerTurn, dispatcher: CollectingDispatcher
    ) -> list[EventType]:
        """Never answer a guess: ask again, offering the closest topics and a person."""
        ranking = turn.ranking
        if turn.kept_topic:  # a follow-up on the answered topic: that topic first
            ranking = ((turn.intent, 1.0), *ranking)
        topics = closest_topics(ranking, self.responses)
        name = "rephrase" if topics else "rephrase_no_topics"
        if topics and (turn.unfamiliar or turn.kept_topic):
            name = "unfamiliar"
        say(dispatcher, self.responses.reply(name).with_buttons(topics + (TALK_TO_A_PERSON,)), name)
        return []
