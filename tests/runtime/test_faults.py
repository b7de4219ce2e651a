"""Faults on real processes under load (the light version of `python -m bench.faults`).

One launcher (`--rasa 2 --actions 2 --gateways 2`: HAProxy in front of two gateways, Rasa replica i
calling action server i, the launcher's own Redis with AOF `appendfsync always`) serves every test of the module. In each test ~20 customers talk
to it through HAProxy (an unclear message first, then routine questions and offered buttons,
every message with its own client_id, retried with the same one on 5xx), and one process is
killed with SIGKILL while they do. After the supervisor has restarted it: no acknowledged message
is missing from its conversation's stream, no client_id ran twice (in the stream, or as a user turn
in Rasa's tracker: the gateway sends it as the message's Rasa metadata), every conversation's next turn is answered by the bot, and the failed-turn
count in its slots carries on. The recovery bound (180 s) is only a guard against a hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.faults import Outcome, Stack, launched, run_fault
from tests.runtime.test_launcher import _processes_of

pytestmark = pytest.mark.model

CONVERSATIONS = 20


@pytest.fixture(scope="module")
def stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("faults")
    with launched(data_dir, rasa=2, actions=2, gateways=2) as running:
        yield running
    assert running.process.returncode == 0, running.log()
    assert _processes_of(data_dir) == []


def _under_fault(stack: Stack, fault: str) -> Outcome:
    return asyncio.run(run_fault(stack, fault, CONVERSATIONS, phase=20.0, kill_after=3.0))


def _assert_nothing_lost(outcome: Outcome) -> None:
    assert outcome.recovery_s is not None, outcome  # the supervisor brought it back
    assert outcome.acknowledged > CONVERSATIONS, outcome
    assert outcome.lost == 0, outcome
    assert outcome.duplicated == 0, outcome
    assert outcome.rasa_reruns == 0, outcome
    assert outcome.not_continued == 0, outcome
    assert outcome.slots_lost == 0, outcome


def test_killing_one_rasa_replica_loses_and_duplicates_nothing_and_conversations_carry_on(
    stack: Stack,
) -> None:
    _assert_nothing_lost(_under_fault(stack, "rasa"))


def test_killing_one_action_server_loses_and_duplicates_nothing_and_conversations_carry_on(
    stack: Stack,
) -> None:
    _assert_nothing_lost(_under_fault(stack, "actions"))


def test_killing_one_gateway_behind_haproxy_loses_and_duplicates_nothing(stack: Stack) -> None:
    # A turn in flight on the killed gateway may have reached Rasa and not the stream (the gateway
    # died before appending it): it is "unrecorded", never acknowledged, and the customer's retry
    # gets 409 turn_outcome_unknown instead of a second run, so no client_id is in Rasa twice.
    _assert_nothing_lost(_under_fault(stack, "gateway"))


def test_killing_redis_keeps_every_acknowledged_message_and_the_stack_recovers(
    stack: Stack,
) -> None:
    _assert_nothing_lost(_under_fault(stack, "redis"))
