"""Agent accounts and sessions: hashed passwords, expiring sessions, every agent endpoint guarded."""

from __future__ import annotations

import uuid

import pytest

from bot.web.auth import DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD, Agent, AgentAccounts

AGENT_ENDPOINTS = [
    ("POST", "/api/agent/logout"),
    ("GET", "/api/agent/me"),
    ("POST", "/api/agent/presence"),
    ("GET", "/api/agent/options"),
    ("GET", "/api/tickets"),
    ("POST", "/api/tickets/claim"),
    ("GET", "/api/tickets/t-1"),
    ("POST", "/api/tickets/t-1/claim"),
    ("POST", "/api/tickets/t-1/messages"),
    ("POST", "/api/tickets/t-1/typing"),
    ("POST", "/api/tickets/t-1/resolve"),
    ("POST", "/api/tickets/t-1/handback"),
    ("POST", "/api/tickets/t-1/transfer"),
]


async def login(http, gateway, name=DEMO_AGENT_EMAIL, password=DEMO_AGENT_PASSWORD):
    async with http.post(
        f"{gateway.url}/api/agent/login", json={"login": name, "password": password}
    ) as response:
        return response.status, await response.json()


async def test_the_demo_agent_logs_in_and_gets_a_session(http, gateway):
    status, body = await login(http, gateway)
    assert status == 200
    assert body["agent"]["login"] == DEMO_AGENT_EMAIL
    headers = {"Authorization": f"Bearer {body['token']}"}
    async with http.get(f"{gateway.url}/api/agent/me", headers=headers) as response:
        assert response.status == 200
        assert (await response.json())["agent"]["name"]


async def test_a_wrong_password_is_401_without_saying_which_part_was_wrong(http, gateway):
    status, body = await login(http, gateway, password="not-the-password")
    assert status == 401
    status_unknown, body_unknown = await login(http, gateway, name="nobody@example.com")
    assert status_unknown == 401
    assert body["error"]["message"] == body_unknown["error"]["message"]


@pytest.mark.parametrize("method, path", AGENT_ENDPOINTS)
async def test_every_agent_endpoint_needs_an_agent_session(http, gateway, method, path):
    async with http.request(method, f"{gateway.url}{path}", json={}) as response:
        assert response.status == 401
    async with http.post(f"{gateway.url}/api/conversations") as response:
        customer_token = (await response.json())["token"]
    headers = {"Authorization": f"Bearer {customer_token}"}  # a customer token is no session
    async with http.request(method, f"{gateway.url}{path}", json={}, headers=headers) as response:
        assert response.status == 401


async def test_a_logged_out_session_no_longer_works(http, gateway):
    _, body = await login(http, gateway)
    headers = {"Authorization": f"Bearer {body['token']}"}
    async with http.post(f"{gateway.url}/api/agent/logout", headers=headers) as response:
        assert response.status == 200
    async with http.get(f"{gateway.url}/api/agent/me", headers=headers) as response:
        assert response.status == 401


async def test_sessions_expire_in_redis(redis, gateway):
    accounts = AgentAccounts(redis, gateway.namespace, session_seconds=1)
    session = await accounts.login(DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD)
    assert session is not None
    keys = [k async for k in redis.scan_iter(f"{gateway.namespace}:web:session:*")]
    ttls = [await redis.ttl(k) for k in keys]
    assert any(0 < ttl <= 1 for ttl in ttls)
    assert session.token not in "".join(keys)  # only the token's hash is stored


async def test_passwords_are_stored_salted_and_hashed(redis, gateway):
    accounts = AgentAccounts(redis, gateway.namespace)
    password = "correct horse battery"
    logins = [f"{uuid.uuid4().hex}@example.com" for _ in range(2)]
    for login_name in logins:
        assert await accounts.create(Agent(login=login_name, name="A"), password)
    records = [await redis.hgetall(f"{gateway.namespace}:web:agent:{n}") for n in logins]
    assert all(password not in str(record) for record in records)
    salts = [record["password"].split("$")[2] for record in records]
    assert all(record["password"].startswith("scrypt$") for record in records)
    assert salts[0] != salts[1]
    assert records[0]["password"] != records[1]["password"]
    assert await accounts.login(logins[0], password) is not None
    assert await accounts.login(logins[0], password + "x") is None


async def test_repeated_failed_logins_are_throttled(http, gateway, redis):
    accounts = AgentAccounts(redis, gateway.namespace)
    name = f"{uuid.uuid4().hex}@example.com"
    await accounts.create(Agent(login=name, name="B"), "a-good-password")
    statuses = [(await login(http, gateway, name, "wrong-password"))[0] for _ in range(11)]
    assert statuses[:10] == [401] * 10
    assert statuses[10] == 429
    status, _ = await login(http, gateway, name, "a-good-password")
    assert status == 429  # even the right password waits out the window
