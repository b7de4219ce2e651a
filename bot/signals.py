"""Per-turn signals of a conversation: what the escalation policy looks at on every customer turn.

`observe(state, turn, config)` is a pure function. `turn` is the customer's latest message as the
NLU parsed it plus the reply tags of the bot messages since the customer's previous message (every
bot message carries a `reply` tag in its metadata, see `actions/turn.py`: `answer:<intent>`,
`did_that_help`, `offer_human`, ...). `state` is a small record
carried from turn to turn in a slot of the conversation, so nothing lives in the action server's
memory and a restart loses nothing. It returns the turn's `TurnSignals` and the next state.

A *failed turn* is one where the bot did not help: the message was unclear or out of scope (the NLU
answered `nlu_fallback` / `out_of_scope`, or the top intent is below the configured confidence), the
customer said "no" to "Did that answer your question?", or the customer raised again a need the bot
had already answered without being told it helped (a loop). A loop is also a message that
*restates* the unresolved need in other words, whatever intent the NLU reads in it: right after an
answer that was not confirmed as helpful, a message that is close to the customer's message that
answer answered (cosine of their MiniLM embeddings, `SignalTurn.similarity_to_answered`), or that
carries a persistence cue ("still", "again", "already tried", "same", capitals, ...) and is either
somewhat close or a short follow-up. Such a message keeps
the previous topic (`TurnSignals.topic`), as does a short follow-up that the NLU reads as another
routine intent without clearly naming it, so the bot never answers it with an unrelated answer
(such a follow-up is unclear: the bot asks, offering the topics). A routine intent predicted for a
message far from that intent's training examples (`familiarity` below `unfamiliar_below`) is
*unfamiliar*, an unclear turn: the bot asks instead of answering. Failed turns are counted since the last
time a person was offered (an `offer_human` reply in the bot's output resets the count) or, unless
configured otherwise, since the customer last confirmed that an answer helped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from pydantic import BaseModel, Field

from bot.sentiment import sentiment, trend

FEEDBACK_REPLY = "did_that_help"
OFFER_REPLY = "offer_human"
ANSWER_PREFIX = "answer:"
FALLBACK_INTENT = "nlu_fallback"
SENTIMENT_HISTORY = 10
# the bot's replies that ask the customer what they meant (actions/respond.py)
ASKING_REPLIES = frozenset({"clarify", "rephrase", "rephrase_no_topics", "unfamiliar"})


@dataclass(frozen=True)
class SignalConfig:
    """What the signals recognise; built from the escalation policy (`Policy.signal_config()`)."""

    human_request_intents: frozenset[str] = frozenset({"request_human"})
    human_patterns: tuple[re.Pattern[str], ...] = ()
    human_unless: tuple[re.Pattern[str], ...] = ()  # "are you a real person?" asks about the bot
    human_phrase_ignored_for: frozenset[str] = frozenset({"bot_challenge"})
    sensitive_intents: frozenset[str] = frozenset()
    sensitive_patterns: tuple[tuple[str, re.Pattern[str]], ...] = ()  # (rule name, pattern)
    sensitive_unless: tuple[tuple[str, re.Pattern[str]], ...] = ()  # (rule name, pattern)
    unanswerable_intents: frozenset[str] = frozenset({"nlu_fallback", "out_of_scope"})
    non_topic_intents: frozenset[str] = frozenset()  # greet, affirm, ...: never a "need" or loop
    unclear_below: float = 0.0
    negative_sentiment: float = -0.3
    reset_failed_when_helped: bool = True  # "yes, that helped" starts the count again
    reset_failed_when_answered: bool = False  # a clear new question starts the count again
    affirm_intent: str = "affirm"
    deny_intent: str = "deny"
    # context (docs/escalation.md, "Context"); the defaults switch it off
    unfamiliar_below: float = 0.0  # familiarity under this: not answered with a routine answer
    restate_similarity: float = 2.0  # this close to the answered message: the need restated
    cue_similarity: float = 2.0  # this close, with a persistence cue: restated
    persistence_patterns: tuple[re.Pattern[str], ...] = ()
    shouting_letters: int = 0  # a word of this many capitals or more is a persistence cue; 0 off
    repeat_patterns: tuple[re.Pattern[str], ...] = ()  # "say that again": not a loop
    followup_words: int = 0  # a message of at most this many words is a short follow-up
    new_topic_confidence: float = 1.0  # a follow-up names a new topic at this confidence
    no_context_intents: frozenset[str] = frozenset()  # affirm, thanks, ...: never restate a need
    # "ok fair enough", "ok i'll wait", "merci": a short acknowledgement, read as affirm whatever
    # the NLU read (it often reads a fallback, out of scope or deny)
    acknowledgement_patterns: tuple[re.Pattern[str], ...] = ()
    acknowledgement_words: int = 0  # at most this many words; 0 switches it off
    # "that didn't help", "thanks for nothing": the customer says the bot did not help
    not_helped_patterns: tuple[re.Pattern[str], ...] = ()
    # small talk (greet, thanks, "no"...) read at under this confidence in a message under this
    # familiarity is a misreading ("hola, mi tarjeta no funciona" read as "no"): an unclear turn
    small_talk_intents: frozenset[str] = frozenset()
    small_talk_unsure_below: float = 0.0
    small_talk_unfamiliar_below: float = 0.0
    # "did you mean A or B?" under this margin between two topic intents; 0 switches it off
    clarify_margin: float = 0.0
    # sensitive intents (of the policy's clarify_sensitive_rules) an ambiguous turn may ask about
    clarify_sensitive_intents: frozenset[str] = frozenset()
    question_is_not_restatement: bool = False  # "what documents?" is a follow-up, not a loop


@dataclass
class SignalTurn:
    """The customer's latest message and what the bot said since their previous one."""

    text: str
    intent: str | None
    confidence: float = 0.0
    ranking: list[tuple[str, float]] = field(default_factory=list)
    bot_replies: list[str] = field(default_factory=list)  # reply tags, in order
    familiarity: float | None = None  # bot.nlu.familiarity score of the top intent
    similarity_to_answered: float | None = None  # to the message the latest answer answered
    similarity_to_earlier: float | None = None  # highest, to the customer's earlier messages


class SignalState(BaseModel):
    """What the signals carry from one turn to the next (kept in a slot of the conversation)."""

    turns: int = 0
    fallback_streak: int = 0
    failed_turns: int = 0  # since the last offer of a person
    failed_total: int = 0
    sentiments: list[float] = Field(default_factory=list)
    negative_streak: int = 0
    prev_intent: str | None = None
    last_answer: str | None = None  # the intent of the latest routine answer
    answered: dict[str, str] = Field(default_factory=dict)  # intent -> pending|helped|not_helped
    not_helped: int = 0
    loops: int = 0
    offers: int = 0
    last_offer_turn: int | None = None

    @classmethod
    def from_slot(cls, raw: object) -> SignalState:
        """The state kept in the slot; a fresh one when the slot is empty or malformed (a
        tracker can be forged: never trust its shape)."""
        if not isinstance(raw, dict):
            return cls()
        try:
            return cls.parse_obj(raw)
        except ValueError:  # pydantic's ValidationError is a ValueError
            return cls()


class TurnSignals(BaseModel):
    """Everything measured on one customer turn; recorded in the audit trail with the decision."""

    turn: int
    text: str
    intent: str | None
    confidence: float
    second_intent: str | None = None
    margin: float
    unclear: bool
    fallback_streak: int
    unfamiliar: bool = False
    familiarity: float | None = None
    ambiguous: bool = False  # top two topic intents too close: the bot asks which one
    topic: str | None = None  # what the message is about: the intent, or the topic it keeps
    kept_topic: bool = False  # a follow-up that keeps the previous topic
    restated: bool = False  # the unresolved need of the previous answer, in other words
    persistence: str | None = None  # the persistence cue found
    repeat_request: bool = False  # the customer asks for the previous answer again
    acknowledged: bool = False  # a short "ok, fair enough": read as affirm
    said_not_helped: bool = False  # "that didn't help", "thanks for nothing"
    topic_status: str | None = None  # the topic's answer so far: pending | helped | not_helped
    similarity_to_answered: float | None = None
    similarity_to_earlier: float | None = None
    feedback: str | None = None  # helped | not_helped, when answering the "did that help" check
    loop: bool = False
    failed: bool = False
    failed_why: list[str] = Field(default_factory=list)  # unclear | not_helped | loop
    failed_turns: int
    failed_total: int
    explicit_request: bool = False
    explicit_match: str | None = None
    sensitive_intent: str | None = None
    sensitive_phrases: list[str] = Field(default_factory=list)  # names of matched policy rules
    sentiment: float | None = None
    sentiment_trend: float = 0.0
    negative_streak: int = 0
    turns_since_offer: int | None = None
    offers: int = 0
    mode: str = "bot"  # handoff mode when the turn was assessed: bot | waiting | agent


def margin(ranking: list[tuple[str, float]], confidence: float) -> tuple[str | None, float]:
    """The second intent and the top confidence's margin over it (the whole confidence if none)."""
    if len(ranking) < 2:
        return None, round(confidence, 4)
    second, second_conf = ranking[1]
    return second, round(confidence - second_conf, 4)


def human_request(turn: SignalTurn, config: SignalConfig) -> str | None:
    """Why the turn is an explicit request for a person (intent, button or phrase), else None."""
    if turn.intent in config.human_request_intents:
        return f"intent:{turn.intent}"
    text = turn.text or ""
    if turn.intent in config.human_phrase_ignored_for or any(
        p.search(text) for p in config.human_unless
    ):
        return None
    for pattern in config.human_patterns:
        match = pattern.search(text)
        if match:
            return f"phrase:{match.group(0).strip()}"
    return None


def sensitive_phrases(text: str, config: SignalConfig) -> list[str]:
    """Names of the sensitive-topic rules whose phrases occur in `text` (each name once), except
    those one of whose `unless` patterns occurs too (a harmless question with a scary word)."""
    names: list[str] = []
    for name, pattern in config.sensitive_patterns:
        if name not in names and pattern.search(text or ""):
            names.append(name)
    cleared = {name for name, pattern in config.sensitive_unless if pattern.search(text or "")}
    return [name for name in names if name not in cleared]


def _feedback(turn: SignalTurn, config: SignalConfig) -> str | None:
    if FEEDBACK_REPLY not in turn.bot_replies:
        return None
    if turn.intent == config.affirm_intent:
        return "helped"
    if turn.intent == config.deny_intent:
        return "not_helped"
    return None


def _is_topic(intent: str | None, config: SignalConfig) -> bool:
    return (
        bool(intent)
        and intent not in config.non_topic_intents
        and (intent not in config.unanswerable_intents)
    )


def persistence_cue(text: str, config: SignalConfig) -> str | None:
    """The persistence cue in `text` ("still", "again", capitals, ...), else None."""
    for pattern in config.persistence_patterns:
        match = pattern.search(text or "")
        if match:
            return match.group(0).strip().lower()
    if config.shouting_letters:
        for word in re.findall(r"[A-Za-z]+", text or ""):
            if len(word) >= config.shouting_letters and word.isupper():
                return "capitals"
    return None


def said_not_helped(text: str, config: SignalConfig) -> bool:
    """Whether the customer says in words that the bot did not help ("thanks for nothing")."""
    return not (text or "").startswith("/") and any(
        p.search(text or "") for p in config.not_helped_patterns
    )


def acknowledgement(turn: SignalTurn, config: SignalConfig) -> bool:
    """Whether the message is a short acknowledgement ("ok fair enough", "ok i'll wait for it",
    "merci"): no question, no persistence cue, no complaint, no request for a person."""
    text = (turn.text or "").strip()
    if (
        not config.acknowledgement_words
        or not text
        or text.startswith("/")
        or "?" in text
        or len(text.split()) > config.acknowledgement_words
        or (turn.intent in config.no_context_intents and not _unsure_small_talk(turn, config))
        or turn.intent in config.sensitive_intents
        or (_is_topic(turn.intent, config) and turn.confidence >= config.new_topic_confidence)
    ):
        return False
    if not any(p.search(text) for p in config.acknowledgement_patterns):
        return False
    return (
        persistence_cue(text, config) is None
        and not said_not_helped(text, config)
        and human_request(turn, config) is None
        and not sensitive_phrases(text, config)
    )


def _unsure_small_talk(turn: SignalTurn, config: SignalConfig) -> bool:
    return (
        turn.intent in config.small_talk_intents
        and turn.confidence < config.small_talk_unsure_below
    )


def misread_small_talk(turn: SignalTurn, config: SignalConfig) -> bool:
    """Whether the NLU's small-talk intent is a misreading: unsure of it, on a message unlike its
    examples ("hola, mi tarjeta no funciona en el cajero" read as "no")."""
    return (
        _unsure_small_talk(turn, config)
        and turn.familiarity is not None
        and turn.familiarity < config.small_talk_unfamiliar_below
        and not (turn.text or "").startswith("/")
    )


def repeat_request(text: str, config: SignalConfig) -> bool:
    """Whether the customer asks to see the previous answer again."""
    return any(p.search(text or "") for p in config.repeat_patterns)


@dataclass(frozen=True)
class Context:
    """How the turn relates to the answer before it."""

    topic: str | None
    kept: bool
    restated: bool
    cue: str | None
    repeat: bool
    asks_more: bool = False  # a follow-up question on the topic, not the need restated


def _context(
    state: SignalState, turn: SignalTurn, answered: dict[str, str], config: SignalConfig
) -> Context:
    prior = state.last_answer
    for reply in turn.bot_replies:
        if reply.startswith(ANSWER_PREFIX):
            prior = reply[len(ANSWER_PREFIX) :]
    text = turn.text or ""
    cue = None if text.startswith("/") else persistence_cue(text, config)
    repeat = not text.startswith("/") and repeat_request(text, config)
    if repeat and prior is not None:  # "say that again": the previous answer, on purpose
        return Context(prior, True, False, cue, True)
    unresolved = prior is not None and answered.get(prior) in ("pending", "not_helped")
    # "what documents?" asks more about the topic; it restates nothing unless it has a cue or
    # is nearly the message answered ("how do i activate the card?" again)
    similarity = turn.similarity_to_answered if turn.similarity_to_answered is not None else -1.0
    asks_more = (
        config.question_is_not_restatement
        and not cue
        and not text.startswith("/")
        and is_question(text)
        and similarity < config.restate_similarity
    )
    short = len(text.split()) <= config.followup_words
    if unresolved and turn.intent == prior and asks_more and short:
        return Context(prior, True, False, cue, repeat, True)  # read as the same topic
    if (
        not unresolved
        or text.startswith("/")  # a button says exactly what it asks
        or turn.intent in config.no_context_intents
        or turn.intent == prior  # the plain loop, counted as such
    ):
        return Context(turn.intent, False, False, cue, repeat)
    clear_new = (
        _is_topic(turn.intent, config)
        and turn.confidence >= config.new_topic_confidence
        and (turn.familiarity is None or turn.familiarity >= config.unfamiliar_below)
    )
    restated = similarity >= config.restate_similarity or bool(
        cue and (similarity >= config.cue_similarity or short)
    )
    kept = restated or (short and not clear_new and _is_topic(turn.intent, config))
    return Context(prior if kept else turn.intent, kept, restated, cue, repeat)


QUESTION_START = re.compile(
    r"^\W*(ok(ay)?\W+|and\W+|so\W+|but\W+)*(what|which|how|when|where|why|who|can|could|do|does|"
    r"is|are|will|would|should)\b",
    re.IGNORECASE,
)


def is_question(text: str) -> bool:
    """Whether the message asks a question: a question mark, or a question word first."""
    return (text or "").rstrip().endswith("?") or bool(QUESTION_START.match(text or ""))


def ambiguous(
    turn: SignalTurn, context: Context, unfamiliar: bool, phrases: list[str], config: SignalConfig
) -> bool:
    """Whether the top two intents are too close to answer either: both topics, the margin under
    `clarify_margin`, typed (a button says what it asks), not a follow-up, not unfamiliar. A
    sensitive intent takes part only if its rule allows it (`clarify_sensitive_intents`) and
    none of the policy's phrases for a sensitive topic occur: the bot asks rather than hands off."""
    second, gap = margin(turn.ranking, turn.confidence)
    allowed = config.clarify_sensitive_intents
    return (
        config.clarify_margin > 0
        and not (turn.text or "").startswith("/")
        and not context.kept
        and not unfamiliar
        and _is_topic(turn.intent, config)
        and _is_topic(second, config)
        and second != turn.intent
        and gap < config.clarify_margin
        and not phrases
        and all(i in allowed or i not in config.sensitive_intents for i in (turn.intent, second))
    )


def _record_answer(state: SignalState, turn: SignalTurn, config: SignalConfig) -> dict[str, str]:
    """Answered intents, adding those the bot answered since the customer's previous message."""
    answered = dict(state.answered)
    for reply in turn.bot_replies:
        if reply.startswith(ANSWER_PREFIX):
            answered[reply[len(ANSWER_PREFIX) :]] = "pending"
    return answered


def observe(
    state: SignalState, turn: SignalTurn, config: SignalConfig
) -> tuple[TurnSignals, SignalState]:
    """Signals of `turn` given the conversation's `state`; returns them and the next state."""
    number = state.turns + 1
    acknowledged = acknowledgement(turn, config)
    if acknowledged:
        turn = replace(turn, intent=config.affirm_intent)
    elif (
        turn.intent == config.affirm_intent
        and persistence_cue(turn.text, config) not in (None, "again")
        and not (turn.text or "").startswith("/")
    ):
        # "i did that already", "yes, still nothing": not a confirmation that it helped
        turn = replace(turn, intent=None)
    elif misread_small_talk(turn, config):
        turn = replace(turn, intent=FALLBACK_INTENT)
    offered_before = OFFER_REPLY in turn.bot_replies
    # right after an offer of a person the cooldown decides, not the words
    not_helped_words = not offered_before and said_not_helped(turn.text, config)
    failed_turns = 0 if offered_before else state.failed_turns
    offers = state.offers + (1 if offered_before else 0)
    last_offer = state.turns if offered_before else state.last_offer_turn

    answered = _record_answer(state, turn, config)
    feedback = "not_helped" if not_helped_words else _feedback(turn, config)
    if feedback and state.prev_intent in answered:
        answered[state.prev_intent] = feedback  # type: ignore[index]
    elif feedback:
        last_pending = [i for i, v in answered.items() if v == "pending"]
        if last_pending:
            answered[last_pending[-1]] = feedback

    context = _context(state, turn, answered, config)
    unfamiliar = (
        not context.kept
        and _is_topic(turn.intent, config)
        and turn.familiarity is not None
        and turn.familiarity < config.unfamiliar_below
    )
    phrases = sensitive_phrases(turn.text, config)
    clarify = ambiguous(turn, context, unfamiliar, phrases, config)
    # still ambiguous right after the bot asked what the customer meant: the asking failed
    # the bot asked what the customer meant; typed back instead of picking: still ambiguous, the
    # need restated ("still declined"), or "no, neither": the asking did not help (unclear)
    after_asking = any(r in ASKING_REPLIES for r in turn.bot_replies) and not (
        turn.text or ""
    ).startswith("/")
    asked_again = after_asking and (
        clarify
        or turn.intent == config.deny_intent
        # a cue on an answered topic is the plain loop, counted as such below
        or (context.cue is not None and answered.get(turn.intent or "") is None)
    )
    on_purpose = context.kept and context.repeat  # the previous answer, asked for again
    unclear = (
        not context.restated
        and not on_purpose
        and (
            turn.intent in config.unanswerable_intents
            or (turn.intent is not None and turn.confidence < config.unclear_below)
            or unfamiliar
            or asked_again
            or (context.kept and not context.repeat)  # a follow-up the bot cannot answer further
        )
    )
    plain_loop = (
        _is_topic(turn.intent, config)
        and not context.repeat
        and not context.asks_more
        and answered.get(turn.intent or "") in ("pending", "not_helped")
    )
    loop = plain_loop or context.restated
    failed_why = [
        why
        for why, hit in (
            ("unclear", unclear),
            ("not_helped", feedback == "not_helped"),
            ("loop", loop),
        )
        if hit
    ]
    failed = bool(failed_why)
    if feedback == "helped" and config.reset_failed_when_helped:
        failed_turns = 0
    clear_question = (
        not failed
        and not context.kept
        and _is_topic(turn.intent, config)
        and turn.intent not in config.sensitive_intents
        and turn.confidence >= config.new_topic_confidence
        and turn.familiarity is not None
        and turn.familiarity >= config.unfamiliar_below
    )
    if clear_question and config.reset_failed_when_answered:
        failed_turns = 0  # the customer found the words: what failed before is behind them
    failed_turns += 1 if failed else 0

    score = None if (turn.text or "").startswith("/") or not turn.text else sentiment(turn.text)
    sentiments = state.sentiments + ([score] if score is not None else [])
    negative_streak = state.negative_streak
    if score is not None:
        negative_streak = negative_streak + 1 if score <= config.negative_sentiment else 0

    explicit = human_request(turn, config)
    second, gap = margin(turn.ranking, turn.confidence)
    signals = TurnSignals(
        turn=number,
        text=turn.text,
        intent=turn.intent,
        confidence=round(turn.confidence, 4),
        second_intent=second,
        margin=gap,
        unclear=unclear,
        fallback_streak=state.fallback_streak + 1 if unclear else 0,
        unfamiliar=unfamiliar,
        familiarity=turn.familiarity,
        ambiguous=clarify,
        topic=context.topic,
        kept_topic=context.kept,
        restated=context.restated,
        persistence=context.cue,
        repeat_request=context.repeat,
        acknowledged=acknowledged,
        said_not_helped=not_helped_words,
        topic_status=answered.get(context.topic or ""),
        similarity_to_answered=turn.similarity_to_answered,
        similarity_to_earlier=turn.similarity_to_earlier,
        feedback=feedback,
        loop=loop,
        failed=failed,
        failed_why=failed_why,
        failed_turns=failed_turns,
        failed_total=state.failed_total + (1 if failed else 0),
        explicit_request=explicit is not None,
        explicit_match=explicit,
        sensitive_intent=(
            turn.intent if turn.intent in config.sensitive_intents and not clarify else None
        ),
        sensitive_phrases=phrases,
        sentiment=score,
        sentiment_trend=trend(sentiments),
        negative_streak=negative_streak,
        turns_since_offer=None if last_offer is None else number - last_offer,
        offers=offers,
    )
    if loop and context.topic in answered:
        answered.pop(context.topic)  # a further repeat is a further loop
    next_state = SignalState(
        turns=number,
        fallback_streak=signals.fallback_streak,
        failed_turns=failed_turns,
        failed_total=signals.failed_total,
        sentiments=sentiments[-SENTIMENT_HISTORY:],
        negative_streak=negative_streak,
        prev_intent=context.topic,
        last_answer=_last_answer(state, turn),
        answered=answered,
        not_helped=state.not_helped + (1 if feedback == "not_helped" else 0),
        loops=state.loops + (1 if loop else 0),
        offers=offers,
        last_offer_turn=last_offer,
    )
    return signals, next_state


def _last_answer(state: SignalState, turn: SignalTurn) -> str | None:
    answers = [r[len(ANSWER_PREFIX) :] for r in turn.bot_replies if r.startswith(ANSWER_PREFIX)]
    return answers[-1] if answers else state.last_answer
