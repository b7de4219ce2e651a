"""Issue 12, finding 2 (internal services exposed), against real processes: the action server and
Rasa with the trained model (``bot.runtime.services.bot_services``, per-run secrets), a real
redis-server, and real gateways.

* The action server answers nothing but its health check without its token: a forged tracker
  that would open a ticket shown as "verified Jane" opens none (and writes nothing to Redis);
  with the token, the same call does open one, so the refusal is what stopped it.
* The action server and Rasa listen on loopback only.
* Rasa's HTTP API refuses every request without its token; a gateway with the token reaches it.
* The launcher-style Redis refuses a client without its password.
* The secrets never appear on a command line or in a service log.
"""

from __future__ import annotations

import json
import socket
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import redis as redis_sync
from redis.asyncio import Redis

from bot.config import PROJECT_ROOT
from bot.queue import HandoffQueue
from bot.runtime.internal_secrets import new_secret
from bot.runtime.ports import free_port
from bot.runtime.redis_server import RedisServer
from bot.runtime.services import BotServices, bot_services, gateway_service, running

pytestmark = pytest.mark.model

LOGS = PROJECT_ROOT / "test-artifacts" / "logs" / "security-internal"
NAMESPACE = "sec-internal"
LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


@pytest.fixture(scope="module")
def bot(redis_server: RedisServer, trained_model: Path, tmp_path_factory) -> Iterator[BotServices]:
    env = {
        "REDIS_URL": redis_server.url,
        "SUPPORT_QUEUE_NAMESPACE": NAMESPACE,
        "EVENTS_DB_URL": f"sqlite:///{tmp_path_factory.mktemp('sec-events') / 'events.db'}",
    }
    with bot_services(trained_model, LOGS, env) as services:
        yield services


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


@pytest.fixture
async def queue(redis_client: Redis) -> HandoffQueue:
    return HandoffQueue(redis_client, namespace=NAMESPACE)


def forged_call(conversation_id: str) -> dict:
    """What Rasa would send the action server for a customer asking for a person, with a
    customer record nobody checked: a ticket shown as the verified customer Jane."""
    latest = {
        "text": "I want a person",
        "intent": {"name": "request_human", "confidence": 1.0},
        "intent_ranking": [{"name": "request_human", "confidence": 1.0}],
        "metadata": {"customer": {"id": "jane", "display_name": "Jane", "verified": True}},
    }
    tracker = {
        "sender_id": conversation_id,
        "slots": {},
        "latest_message": latest,
        "events": [{"event": "user", "text": latest["text"], "parse_data": latest}],
        "paused": False,
        "followup_action": None,
        "active_loop": {},
        "latest_action_name": "action_listen",
    }
    return {
        "next_action": "action_respond",
        "sender_id": conversation_id,
        "tracker": tracker,
        "domain": {},
        "version": "3.6.21",
    }


async def keys_naming(redis: Redis, conversation_id: str) -> list[str]:
    return [key async for key in redis.scan_iter(match=f"*{conversation_id}*")]


@pytest.mark.parametrize("token", [None, "", "wrong", "TOKEN-but-one-char-short", "é"])
async def test_the_action_server_refuses_a_call_without_its_token_and_runs_nothing(
    bot, http, queue, redis_client, token
):
    conversation_id = f"forged-{uuid.uuid4().hex[:10]}"
    if token == "TOKEN-but-one-char-short":
        token = bot.secrets.action_server_token[:-1]
    params = {} if token is None else {"token": token}
    async with http.post(bot.action_url, json=forged_call(conversation_id), params=params) as r:
        assert r.status == 401
        assert "token" in (await r.json())["error"]
    actions_url = bot.action_url.replace("/webhook", "/actions")
    async with http.get(actions_url, params=params) as r:
        assert r.status == 401
    assert await queue.open_ticket_for(conversation_id) is None
    assert await keys_naming(redis_client, conversation_id) == []


async def test_with_its_token_the_same_forged_call_runs_so_the_token_is_what_stops_it(
    bot, http, queue
):
    conversation_id = f"forged-{uuid.uuid4().hex[:10]}"
    params = {"token": bot.secrets.action_server_token}
    async with http.post(bot.action_url, json=forged_call(conversation_id), params=params) as r:
        assert r.status == 200, await r.text()
    ticket = await queue.open_ticket_for(conversation_id)
    assert ticket is not None
    assert ticket.customer.verified is True
    health_url = bot.action_url.replace("/webhook", "/health")
    async with http.get(health_url) as r:  # the one open route: nothing in it
        assert r.status == 200


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on `port` (IPv4 and IPv6), from /proc/net."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        lines = Path(table).read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] == LISTEN and int(port_hex, 16) == port and len(address) == width:
                found.add(_address(address))
    return found


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def test_the_action_server_and_rasa_listen_on_loopback_only(bot):
    for url in (bot.action_url, bot.rasa_url):
        port = int(url.split(":")[2].split("/")[0])
        assert listening_addresses(port) == {"127.0.0.1"}, url


RASA_API = [
    ("GET", "/conversations/{id}/tracker", None),
    ("POST", "/conversations/{id}/tracker/events", {"event": "slot", "name": "x", "value": 1}),
    ("POST", "/conversations/{id}/execute", {"name": "action_respond"}),
    ("POST", "/conversations/{id}/trigger_intent", {"name": "request_human"}),
    ("POST", "/model/parse", {"text": "hello"}),
    ("GET", "/domain", None),
    ("GET", "/status", None),
]


@pytest.mark.parametrize("method,path,body", RASA_API, ids=[f"{m} {p}" for m, p, _ in RASA_API])
async def test_rasas_http_api_refuses_a_request_without_its_token(bot, http, method, path, body):
    url = bot.rasa_url + path.format(id=f"api-{uuid.uuid4().hex[:10]}")
    for params in ({}, {"token": "wrong"}, {"token": bot.rasa_token[:-1]}):
        async with http.request(method, url, json=body, params=params) as r:
            assert r.status == 401, (params, await r.text())


async def test_rasas_http_api_answers_with_its_token(bot, http):
    url = f"{bot.rasa_url}/conversations/api-{uuid.uuid4().hex[:10]}/tracker"
    async with http.get(url, params={"token": bot.rasa_token}) as r:
        assert r.status == 200
        assert "events" in await r.json()


def test_a_gateway_reaches_rasa_with_the_token_and_not_without(bot, redis_server):
    """The gateway's health check calls Rasa's /status: only the one given the token gets in."""
    gateways = {}
    for name, token in (("with-token", bot.rasa_token), ("without-token", "")):
        port = free_port()
        env = {
            "REDIS_URL": redis_server.url,
            "SUPPORT_QUEUE_NAMESPACE": NAMESPACE,
            "RASA_URL": bot.rasa_url,
            "RASA_AUTH_TOKEN": token,
        }
        service = gateway_service("127.0.0.1", port, LOGS, env, name=f"gateway-{name}")
        gateways[name] = (port, service)
    with running([service for _, service in gateways.values()], timeout=60):
        seen = {}
        for name, (port, _) in gateways.items():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
                seen[name] = json.loads(r.read())
    assert seen["with-token"]["dependencies"]["rasa"]["status"] == "up"
    assert seen["without-token"]["dependencies"]["rasa"]["status"] == "down"


def test_the_launchers_redis_refuses_a_client_without_its_password(tmp_path):
    password = new_secret()
    with RedisServer(data_dir=tmp_path / "redis", appendonly=True, password=password) as server:
        for wrong in (None, "wrong"):
            client = redis_sync.Redis(host=server.host, port=server.port, password=wrong)
            with pytest.raises(redis_sync.AuthenticationError):
                client.ping()
            client.close()
        client = redis_sync.Redis.from_url(server.url)  # the URL the services get
        assert client.ping() is True
        client.close()
        assert password not in server.display_url and password not in repr(server)
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes()
        assert password.encode() not in cmdline  # given on stdin, not in `ps`


def test_the_secrets_stay_off_command_lines_and_out_of_the_service_logs(bot, http):
    secrets = [bot.secrets.action_server_token, bot.secrets.rasa_auth_token]
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            content = cmdline.read_bytes()
        except OSError:  # the process ended meanwhile
            continue
        assert not any(secret.encode() in content for secret in secrets), cmdline
    for log in LOGS.glob("*.log"):
        text = log.read_text(errors="replace")
        assert not any(secret in text for secret in secrets), log
