"""The immediate advice of a sensitive topic, said in place of a routine answer.

When a sensitive rule of the escalation policy fires (a scam, a crisis, a vulnerable customer;
docs/policies.md), the NLU's intent may still be a routine one: "I typed my card details into a
link from a text" can read as card linking. A routine answer then would be confident and wrong, so
the customer gets the advice `actions/responses.yml` holds for the rule (`advice`) instead, before
the handoff or the offer of a person: freeze the card, send no more money, share no codes, or the
helplines. Of several rules that fired, the most urgent with advice speaks (the first on a tie).
Rules without advice (a lost card, say) keep the routine answer of their intent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actions.responses import Message, Responses, get_responses
from actions.turn import REPLY_KEY

if TYPE_CHECKING:
    from rasa_sdk.executor import CollectingDispatcher

    from bot.escalation import Decision, Policy

ADVICE_PREFIX = "advice:"
SENSITIVE_PREFIX = "sensitive:"


def sensitive_advice(
    decision: Decision, policy: Policy, responses: Responses
) -> tuple[str, Message] | None:
    """(rule name, advice) of the most urgent sensitive rule of `decision` that has advice."""
    names = [
        r.removeprefix(SENSITIVE_PREFIX) for r in decision.reasons if r.startswith(SENSITIVE_PREFIX)
    ]
    rules = [policy.rule_named(name) for name in names if responses.advice_for(name) is not None]
    if not rules:
        return None
    top = max(rules, key=lambda rule: policy.priorities[rule.priority])
    advice = responses.advice_for(top.name)
    assert advice is not None
    return top.name, advice


def advise(
    dispatcher: CollectingDispatcher,
    decision: Decision,
    policy: Policy,
    responses: Responses | None = None,
) -> bool:
    """Say the advice of the turn's sensitive rule, tagged `advice:<rule>`; False if none."""
    found = sensitive_advice(decision, policy, responses or get_responses())
    if found is None:
        return False
    name, message = found
    dispatcher.utter_message(
        text=message.text,
        buttons=[button.as_dict() for button in message.buttons],
        **{REPLY_KEY: f"{ADVICE_PREFIX}{name}"},
    )
    return True
