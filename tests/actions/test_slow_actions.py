"""A slow action does not stall other conversations (real Redis, real Rasa with the trained
model, real action server running the test-only slow action of tests/actions/slow_actions.py).

Ordering, not timing: while one conversation's action is blocked on I/O (until the test releases
it), turns of other conversations go through Rasa and the action server and are answered; only
then is the slow one released and answered. Were the action server's event loop blocked, or Rasa
calling it one action at a time, the other turns could not finish before the release.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
import pytest
from redis.asyncio import Redis

from bot.runtime import services
from bot.runtime.internal_secrets import InternalSecrets
from bot.runtime.ports import free_port
from bot.runtime.redis_server import RedisServer
from tests.actions.slow_actions import SLOW_MARKER, release_key, started_key
from tests.web.conftest import LOGS

pytestmark = pytest.mark.model
SLOW_ACTIONS = "tests.actions.slow_actions"
TURN_TIMEOUT = aiohttp.ClientTimeout(total=120)


@dataclass
class SlowStack:
    rasa_url: str
    rasa_token: str


def slow_action_server(port: int, env: dict[str, str], secrets: InternalSecrets):
    """The project's action server, serving the test-only package instead of `actions`."""
    service = services.action_server(port, LOGS, env, secrets=secrets)
    service.command[service.command.index("actions")] = SLOW_ACTIONS
    service.name = "slow action server"
    return service


@pytest.fixture(scope="module")
def slow_stack(redis_server: RedisServer, tmp_path_factory) -> Iterator[SlowStack]:
    from bot.runtime.training import ensure_model

    model = ensure_model(quiet=True)
    secrets = InternalSecrets.generate()
    events_db = tmp_path_factory.mktemp("slow-actions") / "events.db"
    env = {
        "REDIS_URL": redis_server.url,
        "SUPPORT_QUEUE_NAMESPACE": "slowtest",
        "EVENTS_DB_URL": f"sqlite:///{events_db}",
        "SLOW_ACTION_WAIT_SECONDS": "300",  # until the test releases it
    }
    actions_port, rasa_port = free_port(), free_port()
    action_url = f"http://127.0.0.1:{actions_port}/webhook"
    stack = [
        slow_action_server(actions_port, env, secrets),
        services.rasa_server(rasa_port, model, action_url, LOGS, env, secrets=secrets),
    ]
    with services.running(stack):
        yield SlowStack(f"http://127.0.0.1:{rasa_port}", secrets.rasa_auth_token)


async def turn(http: aiohttp.ClientSession, stack: SlowStack, sender: str, text: str) -> list:
    url = f"{stack.rasa_url}/webhooks/rest/webhook"
    body = {"sender": sender, "message": text}
    async with http.post(url, json=body, params={"token": stack.rasa_token}) as response:
        assert response.status == 200
        return await response.json()


async def test_other_conversations_are_answered_while_an_action_waits_on_io(
    slow_stack, redis_client: Redis
):
    slow_sender = f"slow-{uuid.uuid4().hex}"
    async with aiohttp.ClientSession(timeout=TURN_TIMEOUT) as http:
        slow = asyncio.create_task(
            turn(http, slow_stack, slow_sender, f"how do I freeze my card? {SLOW_MARKER}")
        )
        # the slow action has started and is waiting on its release key
        started = await redis_client.blpop(started_key(slow_sender), timeout=120)
        assert started is not None, "the slow action never ran"

        others = [f"other-{i}-{uuid.uuid4().hex}" for i in range(4)]
        replies = await asyncio.gather(
            *(turn(http, slow_stack, sender, "how do I freeze my card?") for sender in others)
        )
        assert all(reply and reply[0].get("text") for reply in replies)
        assert not slow.done(), "the slow turn finished before it was released"

        await redis_client.rpush(release_key(slow_sender), "go")
        slow_replies = await slow
    assert slow_replies and slow_replies[0].get("text")
