"""Confident routine answers to a vulnerable customer: none. Every phrasing of
`data/nlu/vulnerable.yml`, and phrasings written apart from it (the issue's misses among them), read
by the real trained NLU and decided by the shipped policy, brings in a person with the sensitive
rule's advice instead of a routine answer."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from actions.advice import sensitive_advice
from actions.responses import get_responses
from bot.config import PROJECT_ROOT
from bot.escalation import Verdict, evaluate, load_policy
from bot.signals import SignalState, SignalTurn, observe

pytestmark = pytest.mark.model

POLICY = load_policy(PROJECT_ROOT / "escalation_policy.yml")
CONFIG = POLICY.signal_config()

UNSEEN = [
    # the misses
    "should I send money to someone I met online?",
    "I typed my card details into a link from a text message",
    "I manage my mum's account under a power of attorney",
    "my phone was stolen and the app was still signed in",
    # written apart from the training examples
    "a guy i've been chatting to on hinge wants me to lend him 800 quid",
    "bank security called, said my account is under attack and to transfer it all to a new one",
    "i paid a deposit on a caravan from an online advert and the seller vanished",
    "this trading site shows my profits but wont let me cash out unless i pay more",
    "i put my card number into a website after an email about a refund",
    "there's no point going on any more",
    "please help me stop betting, can you block it",
    "my nan has alzheimers and i look after her money",
    "my boyfriend makes me give him my bank card every payday",
    "i was diagnosed with severe depression and can't cope with my bills",
    "i'm going through a separation and need my own account",
    "i've lost my job and i can't pay the rent",
    "my father died and his direct debits are still going out",
]


def _examples() -> list[str]:
    raw = yaml.safe_load((PROJECT_ROOT / "data/nlu/vulnerable.yml").read_text())
    return [
        line[2:].strip()
        for block in raw["nlu"]
        for line in block["examples"].splitlines()
        if line.startswith("- ")
    ]


@pytest.fixture(scope="module")
def parser(trained_model: Path):
    from bench.nlu import Parser

    instance = Parser(trained_model)
    yield instance
    instance.close()


def _decide(parser, text: str):
    parsed = parser.parse(text)
    confidence = parsed.ranking[0][1] if parsed.ranking else 0.0
    turn = SignalTurn(text, parsed.intent, confidence, parsed.ranking[:10], [])
    signals, _ = observe(SignalState(), turn, CONFIG)
    return parsed.intent, evaluate(signals, POLICY)


def test_no_vulnerable_phrasing_gets_a_routine_answer(parser):
    responses = get_responses()
    routine = []
    for text in _examples() + UNSEEN:
        intent, decision = _decide(parser, text)
        sensitive = any(r.startswith("sensitive:") for r in decision.reasons)
        brought_in = decision.action in (Verdict.handoff, Verdict.offer)
        advised = sensitive_advice(decision, POLICY, responses) is not None
        if not (sensitive and brought_in and advised):
            routine.append((text, intent, decision.reasons))
    assert routine == []
