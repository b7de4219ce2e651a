"""The escalation policy: one declarative file, validated at start, evaluated in one place.

`load_policy(path)` reads `escalation_policy.yml` (see the file and docs/escalation.md) into a
validated `Policy`; any mistake raises `PolicyError` naming the file and the field. `evaluate(
signals, policy)` turns one turn's `TurnSignals` into a `Decision`: `none`, `offer` (ask whether the
customer wants a person) or `handoff` (create the ticket now), with the reason codes that fired, the
ticket priority and the topic (agent skill). The reason codes travel with the ticket.

Reason codes: `explicit_request`, `sensitive:<rule name>`, `not_helped`, `failed_turns` (with `unclear`,
`not_helped`, `loop` in the signals; `unfamiliar` and `restated` say why a turn was unclear or a loop), `negative_sentiment`, `negative_failed_turn`,
`negative_streak`, `sentiment_falling`, `conversation_length`.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from enum import Enum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, Field, PrivateAttr, ValidationError, root_validator, validator

from bot.signals import SignalConfig, TurnSignals

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CONVERSATIONAL_INTENTS = frozenset(
    {
        "greet",
        "goodbye",
        "thanks",
        "affirm",
        "deny",
        "bot_challenge",
        "request_human",
        "cancel_handoff",
        "continue_with_bot",
        "csat_rating",
        "EXTERNAL_handback",
    }
)

SMALL_TALK_INTENTS = frozenset({"greet", "goodbye", "thanks", "affirm", "deny", "bot_challenge"})


class PolicyError(ValueError):
    """The escalation policy file is missing, unreadable or invalid."""


class Verdict(str, Enum):
    """What the policy does on a turn: nothing, offer a person, or hand off now."""

    none = "none"
    offer = "offer"
    handoff = "handoff"


RANK = {Verdict.none: 0, Verdict.offer: 1, Verdict.handoff: 2}


class _Strict(BaseModel):
    class Config:
        extra = "forbid"
        allow_mutation = False


def _compile(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        try:
            re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"bad regular expression {pattern!r}: {exc}") from exc
    return patterns


class ExplicitRequest(_Strict):
    action: Verdict = Verdict.handoff
    intents: list[str] = Field(default_factory=lambda: ["request_human"])
    ignore_phrases_for_intents: list[str] = Field(default_factory=lambda: ["bot_challenge"])
    unless: list[str] = Field(default_factory=list)
    phrases: list[str] = Field(default_factory=list)

    _patterns = validator("phrases", "unless", allow_reuse=True)(_compile)


class FailedTurns(_Strict):
    offer_after: int = Field(2, ge=1, le=10)
    handoff_after: int = Field(0, ge=0, le=20)
    unclear_below: float = Field(0.0, ge=0.0, le=1.0)
    offer_when_not_helped: bool = True  # "no" to "Did that answer your question?"
    reset_when_helped: bool = True  # "yes, that helped" starts the count again
    # a clear new question answered (confident, familiar, not a follow-up): the rephrase worked
    reset_when_answered: bool = False

    @root_validator(skip_on_failure=True)
    def _handoff_after_offer(cls, values: dict[str, Any]) -> dict[str, Any]:
        handoff, offer = values["handoff_after"], values["offer_after"]
        if handoff and handoff <= offer:
            raise ValueError(
                f"handoff_after ({handoff}) must be 0 or more than offer_after ({offer})"
            )
        return values


class SentimentRule(_Strict):
    action: Verdict = Verdict.offer
    very_negative: float = Field(-0.6, ge=-1.0, le=0.0)
    negative: float = Field(-0.3, ge=-1.0, le=0.0)
    negative_streak: int = Field(2, ge=1)
    falling_by: float = Field(0.7, gt=0.0, le=2.0)
    negative_failed_turn: bool = True  # a failed turn whose message is negative

    @root_validator(skip_on_failure=True)
    def _ordered(cls, values: dict[str, Any]) -> dict[str, Any]:
        if values["very_negative"] > values["negative"]:
            raise ValueError("very_negative must be at or below negative")
        return values


class LengthRule(_Strict):
    action: Verdict = Verdict.offer
    offer_at_turn: int = Field(14, ge=2)


class SensitiveRule(_Strict):
    name: str = Field(..., regex=r"^[a-z][a-z0-9_]*$")
    intents: list[str] = Field(default_factory=list)
    phrases: list[str] = Field(default_factory=list)
    # a phrase match is dropped when one of these occurs too ("not saying it's fraud", "fraud
    # checks"): a harmless question with a scary word; the rule's intents are not affected
    unless: list[str] = Field(default_factory=list)
    topic: str = Field(..., regex=r"^[a-z][a-z0-9_]*$")
    priority: str
    action: Verdict = Verdict.handoff

    _patterns = validator("phrases", "unless", allow_reuse=True)(_compile)

    @root_validator(skip_on_failure=True)
    def _matches_something(cls, values: dict[str, Any]) -> dict[str, Any]:
        if not values["intents"] and not values["phrases"]:
            raise ValueError(f"sensitive rule {values['name']!r} has neither intents nor phrases")
        return values


class ContextRule(_Strict):
    """How a message is read against the conversation before it (docs/escalation.md, Context).
    The defaults switch it off; escalation_policy.yml sets the calibrated values."""

    unfamiliar_below: float = Field(0.0, ge=0.0, le=1.0)
    restate_similarity: float = Field(2.0, ge=0.0, le=2.0)
    cue_similarity: float = Field(2.0, ge=0.0, le=2.0)
    persistence_phrases: list[str] = Field(default_factory=list)
    shouting_letters: int = Field(0, ge=0)
    repeat_phrases: list[str] = Field(default_factory=list)
    followup_words: int = Field(0, ge=0, le=30)
    new_topic_confidence: float = Field(1.0, ge=0.0, le=1.0)
    never_repeat_answer: bool = False  # an answer already given: say so and offer a person
    acknowledgement_phrases: list[str] = Field(default_factory=list)
    acknowledgement_words: int = Field(0, ge=0, le=20)  # 0 switches acknowledgements off
    not_helped_phrases: list[str] = Field(default_factory=list)
    small_talk_unsure_below: float = Field(0.0, ge=0.0, le=1.0)  # 0 switches it off
    small_talk_unfamiliar_below: float = Field(0.0, ge=0.0, le=1.0)
    # "did you mean A or B?": a routine intent whose margin over a second routine intent is under
    # this is not answered; the bot asks which of the two (not a failed turn). 0 switches it off
    clarify_margin: float = Field(0.0, ge=0.0, le=1.0)
    # sensitive rules whose intents neighbour routine ones (a dispute read in a statement
    # question): a prediction of one under clarify_margin over a routine, non-sensitive second
    # intent, with none of the rule's phrases, asks "did you mean A or B?" instead of handing off
    clarify_sensitive_rules: list[str] = Field(default_factory=list)
    # a follow-up question ("what documents?") with no persistence cue is not the need restated,
    # however close its embedding: it keeps the topic (the bot asks) instead of being a loop
    question_is_not_restatement: bool = False

    _patterns = validator(
        "persistence_phrases",
        "repeat_phrases",
        "acknowledgement_phrases",
        "not_helped_phrases",
        allow_reuse=True,
    )(_compile)


class OpeningHours(_Strict):
    timezone: str = "Europe/London"
    days: list[str] = Field(default_factory=lambda: list(DAYS))
    open: str = "00:00"
    close: str = "24:00"

    @validator("timezone")
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

    @validator("days", each_item=True)
    def _day(cls, value: str) -> str:
        if value not in DAYS:
            raise ValueError(f"unknown day {value!r}; use {', '.join(DAYS)}")
        return value

    @validator("open", "close")
    def _clock(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d|24:00", value):
            raise ValueError(f"{value!r} is not a time of day HH:MM (00:00 to 24:00)")
        return value

    @root_validator(skip_on_failure=True)
    def _open_before_close(cls, values: dict[str, Any]) -> dict[str, Any]:
        if values["open"] >= values["close"]:
            raise ValueError(f"open ({values['open']}) must be before close ({values['close']})")
        return values

    def is_open(self, at: datetime) -> bool:
        """Whether agents work at `at` (an aware datetime), in the configured timezone."""
        local = at.astimezone(ZoneInfo(self.timezone))
        if DAYS[local.weekday()] not in self.days:
            return False
        opens = time.fromisoformat(self.open)
        now = local.time()
        if self.close == "24:00":
            return now >= opens
        return opens <= now < time.fromisoformat(self.close)


class HandoffRule(_Strict):
    wait_limit_seconds: float = Field(300, gt=0)
    opening_hours: OpeningHours = Field(default_factory=OpeningHours)


class Policy(_Strict):
    version: int = Field(1, ge=1, le=1)
    priorities: dict[str, int] = Field(
        default_factory=lambda: {"normal": 3, "high": 6, "urgent": 9}
    )
    default_topic: str = "general"
    default_priority: str = "normal"
    explicit_request: ExplicitRequest = Field(default_factory=ExplicitRequest)
    failed_turns: FailedTurns = Field(default_factory=FailedTurns)
    unanswerable_intents: list[str] = Field(
        default_factory=lambda: ["nlu_fallback", "out_of_scope"]
    )
    sentiment: SentimentRule = Field(default_factory=SentimentRule)
    conversation_length: LengthRule = Field(default_factory=LengthRule)
    offer_cooldown_turns: int = Field(2, ge=0)
    sensitive: list[SensitiveRule] = Field(default_factory=list)
    handoff: HandoffRule = Field(default_factory=HandoffRule)
    context: ContextRule = Field(default_factory=ContextRule)
    _signal_config: SignalConfig | None = PrivateAttr(None)  # built on first use

    @validator("priorities")
    def _queue_scale(cls, value: dict[str, int]) -> dict[str, int]:
        for name, level in value.items():
            if not 0 <= level <= 9:
                raise ValueError(f"priority {name!r} is {level}; the queue's scale is 0-9")
        return value

    @root_validator(skip_on_failure=True)
    def _consistent(cls, values: dict[str, Any]) -> dict[str, Any]:
        known = values["priorities"]
        if values["default_priority"] not in known:
            raise ValueError(
                f"default_priority {values['default_priority']!r} is not in priorities"
            )
        names: set[str] = set()
        claimed: dict[str, str] = {}
        for rule in values["sensitive"]:
            if rule.priority not in known:
                raise ValueError(
                    f"sensitive rule {rule.name!r}: priority {rule.priority!r} is not one of "
                    f"{', '.join(known)}"
                )
            if rule.name in names:
                raise ValueError(f"sensitive rule name {rule.name!r} is used twice")
            names.add(rule.name)
            for intent in rule.intents:
                if intent in claimed:
                    raise ValueError(
                        f"intent {intent!r} is in sensitive rules {claimed[intent]!r} and {rule.name!r}"
                    )
                claimed[intent] = rule.name
        context = values.get("context")
        unknown = [
            n for n in (context.clarify_sensitive_rules if context else []) if n not in names
        ]
        if unknown:
            raise ValueError(f"context.clarify_sensitive_rules: no sensitive rule {unknown[0]!r}")
        return values

    def rule_for_intent(self, intent: str | None) -> SensitiveRule | None:
        return next((r for r in self.sensitive if intent and intent in r.intents), None)

    def rule_named(self, name: str) -> SensitiveRule:
        return next(r for r in self.sensitive if r.name == name)

    def copy(self, **kwargs: Any) -> Policy:
        """A copy (pydantic's), whose signal config is built afresh from its own fields."""
        copied = super().copy(**kwargs)
        copied._signal_config = None
        return copied

    def signal_config(self) -> SignalConfig:
        """What `bot.signals.observe` needs to recognise, compiled on first use and kept."""
        if self._signal_config is None:
            self._signal_config = self._build_signal_config()
        return self._signal_config

    def _build_signal_config(self) -> SignalConfig:
        flags = re.IGNORECASE
        return SignalConfig(
            human_request_intents=frozenset(self.explicit_request.intents),
            human_patterns=tuple(re.compile(p, flags) for p in self.explicit_request.phrases),
            human_unless=tuple(re.compile(p, flags) for p in self.explicit_request.unless),
            human_phrase_ignored_for=frozenset(self.explicit_request.ignore_phrases_for_intents),
            sensitive_intents=frozenset(i for r in self.sensitive for i in r.intents),
            sensitive_patterns=tuple(
                (r.name, re.compile(p, flags)) for r in self.sensitive for p in r.phrases
            ),
            sensitive_unless=tuple(
                (r.name, re.compile(p, flags)) for r in self.sensitive for p in r.unless
            ),
            unanswerable_intents=frozenset(self.unanswerable_intents),
            non_topic_intents=CONVERSATIONAL_INTENTS,
            unclear_below=self.failed_turns.unclear_below,
            negative_sentiment=self.sentiment.negative,
            reset_failed_when_helped=self.failed_turns.reset_when_helped,
            reset_failed_when_answered=self.failed_turns.reset_when_answered,
            unfamiliar_below=self.context.unfamiliar_below,
            restate_similarity=self.context.restate_similarity,
            cue_similarity=self.context.cue_similarity,
            persistence_patterns=tuple(
                re.compile(p, flags) for p in self.context.persistence_phrases
            ),
            shouting_letters=self.context.shouting_letters,
            repeat_patterns=tuple(re.compile(p, flags) for p in self.context.repeat_phrases),
            followup_words=self.context.followup_words,
            new_topic_confidence=self.context.new_topic_confidence,
            no_context_intents=CONVERSATIONAL_INTENTS - {"deny"},
            acknowledgement_patterns=tuple(
                re.compile(p, flags) for p in self.context.acknowledgement_phrases
            ),
            acknowledgement_words=self.context.acknowledgement_words,
            not_helped_patterns=tuple(
                re.compile(p, flags) for p in self.context.not_helped_phrases
            ),
            small_talk_intents=SMALL_TALK_INTENTS,
            small_talk_unsure_below=self.context.small_talk_unsure_below,
            small_talk_unfamiliar_below=self.context.small_talk_unfamiliar_below,
            clarify_margin=self.context.clarify_margin,
            clarify_sensitive_intents=frozenset(
                i
                for r in self.sensitive
                if r.name in self.context.clarify_sensitive_rules
                for i in r.intents
            ),
            question_is_not_restatement=self.context.question_is_not_restatement,
        )


class Decision(BaseModel):
    """What the policy decided for one turn, and why."""

    action: Verdict = Verdict.none
    reasons: list[str] = Field(default_factory=list)
    priority: int = 0
    priority_name: str = "normal"
    topic: str = "general"
    held_back: str | None = None  # why a would-be offer was not made (recently_offered, mode)

    class Config:
        use_enum_values = False


def load_policy(path: Path | str) -> Policy:
    """Read and validate the policy file; raise `PolicyError` with a clear message on a mistake."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PolicyError(f"{path}: escalation policy file not found") from exc
    try:
        return parse_policy(text)
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from exc


def parse_policy(text: str) -> Policy:
    """Validate a policy given as YAML text; raise `PolicyError` naming every problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise PolicyError("expected a mapping of settings at the top level")
    try:
        return Policy.parse_obj(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'] if p != '__root__') or 'policy'}: {err['msg']}"
            for err in exc.errors()
        )
        raise PolicyError(f"invalid escalation policy: {problems}") from exc


def _fired(signals: TurnSignals, policy: Policy) -> list[tuple[str, Verdict, str | None]]:
    """(reason code, action, sensitive rule name or None) for every rule the turn triggers."""
    fired: list[tuple[str, Verdict, str | None]] = []
    if signals.explicit_request:
        fired.append(("explicit_request", policy.explicit_request.action, None))
    rule = policy.rule_for_intent(signals.sensitive_intent)
    names = ([rule.name] if rule else []) + [
        n for n in signals.sensitive_phrases if not rule or n != rule.name
    ]
    for name in names:
        fired.append((f"sensitive:{name}", policy.rule_named(name).action, name))
    failed = policy.failed_turns
    if failed.handoff_after and signals.failed_turns >= failed.handoff_after:
        fired.append(("failed_turns", Verdict.handoff, None))
    elif signals.failed_turns >= failed.offer_after:
        fired.append(("failed_turns", Verdict.offer, None))
    elif failed.offer_when_not_helped and signals.feedback == "not_helped":
        fired.append(("not_helped", Verdict.offer, None))
    mood = policy.sentiment
    if signals.sentiment is not None and signals.sentiment <= mood.very_negative:
        fired.append(("negative_sentiment", mood.action, None))
    if (
        mood.negative_failed_turn
        and signals.failed
        and signals.sentiment is not None
        and signals.sentiment <= mood.negative
    ):
        fired.append(("negative_failed_turn", mood.action, None))
    if signals.negative_streak >= mood.negative_streak:
        fired.append(("negative_streak", mood.action, None))
    if (
        signals.sentiment is not None
        and signals.sentiment <= mood.negative
        and signals.sentiment_trend <= -mood.falling_by
    ):
        fired.append(("sentiment_falling", mood.action, None))
    if signals.turn == policy.conversation_length.offer_at_turn:
        fired.append(("conversation_length", policy.conversation_length.action, None))
    return fired


def evaluate(signals: TurnSignals, policy: Policy) -> Decision:
    """The policy's decision for one turn: the strongest action of every rule that fired."""
    fired = [f for f in _fired(signals, policy) if f[1] != Verdict.none]
    if not fired:
        quiet = Decision(
            priority=policy.priorities[policy.default_priority],
            priority_name=policy.default_priority,
            topic=policy.default_topic,
        )
        return _hold_back(quiet, signals, policy)
    action = max((a for _, a, _ in fired), key=RANK.__getitem__)
    rules = [policy.rule_named(n) for _, _, n in fired if n]
    top = max(rules, key=lambda r: policy.priorities[r.priority], default=None)
    priority_name = top.priority if top else policy.default_priority
    decision = Decision(
        action=action,
        reasons=[code for code, _, _ in fired],
        priority=policy.priorities[priority_name],
        priority_name=priority_name,
        topic=top.topic if top else policy.default_topic,
    )
    return _hold_back(decision, signals, policy)


def _hold_back(decision: Decision, signals: TurnSignals, policy: Policy) -> Decision:
    """No new offer or handoff while a person already has it or soon after a declined offer."""
    if signals.mode != "bot":
        return decision.copy(update={"action": Verdict.none, "held_back": f"mode:{signals.mode}"})
    recent = (
        signals.turns_since_offer is not None
        and signals.turns_since_offer <= policy.offer_cooldown_turns
    )
    firm = {"failed_turns", "not_helped"}
    if decision.action == Verdict.offer and recent and not firm & set(decision.reasons):
        return decision.copy(update={"action": Verdict.none, "held_back": "recently_offered"})
    return decision
