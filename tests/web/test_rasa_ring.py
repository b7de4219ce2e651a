"""One conversation on one Rasa replica, with failover (bot/web/rasa_ring.py), on real processes.

Two Rasa replicas with the trained model share one action server and the tracker and lock stores
on one Redis; a gateway gets both in ``RASA_URLS``. Which replica ran a turn is read from the
replicas' own logs (Rasa's lock store logs "Acquired lock for conversation '<id>'" at debug
level), compared with the ring's choice. Then one replica is killed (SIGKILL): its conversations'
next turns are answered by the other replica, and their slots carry on (the second unclear
message is the second failed turn, and the bot offers a person).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
import pytest
import requests

from bot.runtime import services
from bot.runtime.internal_secrets import InternalSecrets
from bot.runtime.ports import free_port
from bot.runtime.redis_server import RedisServer
from bot.runtime.services import Service
from bot.web.rasa_ring import HashRing
from tests.web.conftest import LOGS, Gateway, _run, gateway_service
from tests.web.test_live_relay import Customer, new_customer

pytestmark = pytest.mark.model

UNCLEAR = ("blorp", "flarp zing")
PER_REPLICA = 2


@dataclass
class Ring:
    gateway: Gateway
    replicas: dict[str, Service]  # base URL -> its Rasa
    secrets: InternalSecrets

    def handled(self, url: str, conversation_id: str) -> bool:
        """Whether the replica at `url` ran a turn of the conversation (its log says so)."""
        text = self.replicas[url].log_path.read_text(errors="replace")
        return f"Acquired lock for conversation '{conversation_id}'" in text

    def tracker(self, url: str, conversation_id: str) -> dict:
        response = requests.get(
            f"{url}/conversations/{conversation_id}/tracker",
            params={"token": self.secrets.rasa_auth_token},
            timeout=60,
        )
        response.raise_for_status()
        return response.json()

    def slots(self, url: str, conversation_id: str) -> dict:
        return self.tracker(url, conversation_id)["slots"]

    def client_ids(self, url: str, conversation_id: str) -> list[str | None]:
        """The message id in the metadata of each user event of Rasa's tracker, in order."""
        events = self.tracker(url, conversation_id)["events"]
        return [(e.get("metadata") or {}).get("client_id") for e in events if e["event"] == "user"]


@pytest.fixture(scope="module")
def ring(web_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ring]:
    from bot.runtime.training import ensure_model

    model = ensure_model(quiet=True)
    namespace = "ring"
    env = {
        "REDIS_URL": web_redis.url,
        "SUPPORT_QUEUE_NAMESPACE": namespace,
        "EVENTS_DB_URL": f"sqlite:///{tmp_path_factory.mktemp('ring') / 'events.db'}",
    }
    secrets = InternalSecrets.generate()  # one set for the action server and both replicas
    actions_port = free_port()
    action_url = f"http://127.0.0.1:{actions_port}/webhook"
    actions = services.action_server(actions_port, LOGS, env, secrets=secrets)
    actions.name, actions.log_path = "actions-ring", LOGS / "actions-ring.log"
    replicas: dict[str, Service] = {}
    for name in ("rasa-ring-1", "rasa-ring-2"):
        port = free_port()
        rasa = services.rasa_server(
            port, model, action_url, LOGS, {**env, "LOG_LEVEL": "DEBUG"}, secrets=secrets
        )
        rasa.name, rasa.log_path = name, LOGS / f"{name}.log"
        rasa.log_path.unlink(missing_ok=True)  # this run's turns only
        replicas[f"http://127.0.0.1:{port}"] = rasa
    urls = list(replicas)
    with services.running([actions, *replicas.values()]):
        gateway = gateway_service(
            "gateway-ring", web_redis.url, urls[0], namespace, action_url, secrets.rasa_auth_token
        )
        gateway.service.env["RASA_URLS"] = ",".join(urls)
        for running in _run(gateway):
            yield Ring(running, replicas, secrets)


async def _customers_per_replica(
    http: aiohttp.ClientSession, ring: Ring
) -> dict[str, list[Customer]]:
    """New conversations until each replica owns PER_REPLICA of them (by the ring)."""
    hashing = HashRing(list(ring.replicas))
    owned: dict[str, list[Customer]] = {url: [] for url in ring.replicas}
    for _ in range(200):
        customer = await new_customer(http, ring.gateway)
        mine = owned[hashing.replica_for(customer.conversation_id)]
        if len(mine) < PER_REPLICA:
            mine.append(customer)
        if all(len(c) == PER_REPLICA for c in owned.values()):
            return owned
    raise AssertionError("the ring never gave a conversation to one of the replicas")


async def _bot_answers(customer: Customer, text: str) -> None:
    status, body = await customer.say(text)
    assert status == 200, body
    notices = [m for m in body.get("messages", []) if m.get("code") == "bot_unavailable"]
    assert not notices, body
    assert any(m.get("from") == "bot" for m in body["messages"]), body


async def test_conversations_spread_over_both_replicas_and_fail_over_when_one_is_killed(
    http: aiohttp.ClientSession, ring: Ring
) -> None:
    first, second = list(ring.replicas)
    owned = await _customers_per_replica(http, ring)

    for url, customers in owned.items():
        other = second if url == first else first
        for customer in customers:
            await _bot_answers(customer, UNCLEAR[0])
            # the turn ran on the conversation's replica, and only there
            assert ring.handled(url, customer.conversation_id)
            assert not ring.handled(other, customer.conversation_id)
            state = ring.slots(url, customer.conversation_id)["escalation_state"]
            assert state["failed_turns"] == 1, state
            # the message id travels with the turn: Rasa's user event names the stream's message
            view = await customer.view()
            in_stream = [m["client_id"] for m in view["messages"] if m.get("from") == "customer"]
            assert ring.client_ids(url, customer.conversation_id) == in_stream != []

    killed = ring.replicas[first]
    assert killed.process is not None
    os.killpg(killed.process.pid, signal.SIGKILL)  # a crash in the middle of the conversations
    killed.process.wait()

    for customer in owned[first]:
        await _bot_answers(customer, UNCLEAR[1])
        # the survivor ran the turn and carried the conversation on: the second failed turn
        assert ring.handled(second, customer.conversation_id)
        state = ring.slots(second, customer.conversation_id)["escalation_state"]
        assert state["failed_turns"] == 2 and state["failed_total"] == 2, state
    for customer in owned[second]:  # the survivor's own conversations go on as before
        await _bot_answers(customer, UNCLEAR[1])
        assert ring.slots(second, customer.conversation_id)["escalation_state"]["failed_turns"] == 2

    async with http.get(f"{ring.gateway.url}/healthz") as response:
        status, body = response.status, await response.json()
    assert status == 200 and body["bot_available"] is True, body
    rasa = body["dependencies"]["rasa"]
    assert rasa["status"] == "degraded", rasa
    assert rasa["replicas"] == [
        {"name": "rasa-1", "status": "down"},
        {"name": "rasa-2", "status": "up"},
    ]
