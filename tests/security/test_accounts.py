"""Issue 12, finding 1 (accounts), against real gateway processes on a real redis-server.

* No published password outside demo mode; the first lead gets a random one; demo mode seeds the
  demo lead and says so.
* ``python -m bot.accounts`` works end to end (add, list, disable, enable, reset-password,
  set-role, set-skills) with clear errors and exit codes, and its changes reach live sessions.
* The admin API is lead-only (401 without a session, 403 for an agent or a foreign origin),
  manages accounts, and never lets the last active lead go.
* Sessions have an absolute lifetime besides the sliding one.
* Passwords are hashed with scrypt at N=2^17, r=8, p=1 by default; a weaker stored hash (the first
  format included) is rehashed on login.

Two gateways run against one Redis: ``prod_gateway`` with the default settings (what a fresh
clone runs without ``--demo``), and ``fast_gateway`` with cheaper hashes for the many logins of
the admin and CLI tests (N=2^12; hashes carry their own parameters, so nothing else differs).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aiohttp
import pytest
from redis.asyncio import Redis

from bot.accounts import ensure_first_lead, prepare_accounts
from bot.config import PROJECT_ROOT, Settings
from bot.runtime import services
from bot.runtime.redis_server import RedisServer
from bot.runtime.services import free_port, running
from bot.web.auth import (
    DEMO_AGENT_EMAIL,
    DEMO_AGENT_PASSWORD,
    SESSION_RECHECK,
    Agent,
    AgentAccounts,
)
from bot.web.passwords import PRODUCTION, PasswordHasher, ScryptParams

LOGS = PROJECT_ROOT / "test-artifacts" / "logs"
FAST = ScryptParams(log2_n=12, r=8, p=1)
ADMIN_ROUTES = [
    ("GET", "/api/admin/accounts", None),
    ("POST", "/api/admin/accounts", {"login": "x@example.com", "name": "X"}),
    ("POST", "/api/admin/accounts/x@example.com/disable", None),
    ("POST", "/api/admin/accounts/x@example.com/enable", None),
    ("POST", "/api/admin/accounts/x@example.com/reset-password", None),
    ("POST", "/api/admin/accounts/x@example.com/role", {"role": "lead"}),
    ("POST", "/api/admin/accounts/x@example.com/skills", {"skills": ["general"]}),
]


@dataclass
class RunningGateway:
    url: str
    redis_url: str
    namespace: str


@pytest.fixture(scope="module")
def accounts_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(data_dir=tmp_path_factory.mktemp("accounts-redis")) as server:
        yield server


def _gateway(name: str, redis_url: str, namespace: str, extra: dict[str, str]):
    port = free_port()
    env = {
        "REDIS_URL": redis_url,
        "RASA_URL": f"http://127.0.0.1:{free_port()}",  # no bot needed here
        "SUPPORT_QUEUE_NAMESPACE": namespace,
        "GATEWAY_PORT": str(port),
        "SUPPORT_DEMO": "0",  # a fresh clone's setting, whatever the developer's shell says
        **extra,
    }
    service = services.gateway_service("127.0.0.1", port, LOGS, env, name=name)
    return service, RunningGateway(f"http://127.0.0.1:{port}", redis_url, namespace)


@pytest.fixture(scope="module")
def prod_gateway(accounts_redis: RedisServer) -> Iterator[RunningGateway]:
    """Default settings: no demo mode, production scrypt cost."""
    service, gateway = _gateway("gateway-sec-accounts", accounts_redis.url, "secprod", {})
    for name in ("PASSWORD_SCRYPT_LOG2_N", "AGENT_SESSION_MAX_SECONDS"):
        assert name not in os.environ, f"{name} set in the environment: tests need the default"
    with running([service], timeout=60):
        yield gateway


@pytest.fixture(scope="module")
def fast_gateway(accounts_redis: RedisServer) -> Iterator[RunningGateway]:
    extra = {"PASSWORD_SCRYPT_LOG2_N": str(FAST.log2_n)}
    service, gateway = _gateway("gateway-sec-accounts-fast", accounts_redis.url, "secfast", extra)
    with running([service], timeout=60):
        yield gateway


@pytest.fixture
async def redis(accounts_redis: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(accounts_redis.url, decode_responses=True)
    yield client
    await client.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


async def _create(
    redis: Redis, namespace: str, role: str = "agent", skills=None
) -> tuple[str, str]:
    accounts = AgentAccounts(redis, namespace, hasher=PasswordHasher(FAST))
    login, password = _unique(role), secrets.token_urlsafe(12)
    agent = Agent(login=login, name=f"{role.title()} T", skills=skills or ["general"], role=role)
    assert await accounts.create(agent, password)
    return login, password


async def _login(http: aiohttp.ClientSession, gateway: RunningGateway, login: str, password: str):
    async with http.post(
        f"{gateway.url}/api/agent/login", json={"login": login, "password": password}
    ) as response:
        return response.status, await response.json()


async def _token(http, gateway, login: str, password: str) -> str:
    status, body = await _login(http, gateway, login, password)
    assert status == 200, body
    return body["token"]


async def _call(http, gateway, method: str, path: str, token: str | None, body=None, origin=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if origin:
        headers["Origin"] = origin
    async with http.request(method, gateway.url + path, json=body, headers=headers) as response:
        return response.status, await response.json()


async def _me_status(http, gateway, token: str) -> int:
    return (await _call(http, gateway, "GET", "/api/agent/me", token))[0]


async def _until_refused(http, gateway, token: str) -> int:
    """The session's status once the gateway's short session cache has lapsed (or 401 sooner)."""
    deadline = time.monotonic() + SESSION_RECHECK * 4
    status = await _me_status(http, gateway, token)
    while status == 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        status = await _me_status(http, gateway, token)
    return status


def _cli(gateway: RunningGateway, *args: str, stdin: str | None = None):
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "REDIS_URL": gateway.redis_url,
        "SUPPORT_QUEUE_NAMESPACE": gateway.namespace,
        "PASSWORD_SCRYPT_LOG2_N": str(FAST.log2_n),
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.accounts", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )


def _shown_password(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith("password (shown once): ")]
    assert len(lines) == 1, stdout
    return lines[0].split(": ", 1)[1]


# -- no published password -----------------------------------------------------------------------


async def test_without_demo_mode_the_published_demo_password_does_not_exist(
    http, prod_gateway, redis
):
    status, body = await _login(http, prod_gateway, DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD)
    assert status == 401, body
    assert not await redis.exists(f"{prod_gateway.namespace}:web:agent:{DEMO_AGENT_EMAIL}")
    namespaces = {
        key.split(":")[0] async for key in redis.scan_iter(f"*:web:agent:{DEMO_AGENT_EMAIL}")
    }
    assert namespaces <= {"secdemo"}  # only the demo-mode test below may create it


async def test_the_first_lead_gets_a_random_password_once_and_is_a_lead(http, prod_gateway, redis):
    settings = Settings(queue_namespace=prod_gateway.namespace, first_lead_login="boss@example.com")
    await redis.delete(f"{prod_gateway.namespace}:web:leads")  # as on a fresh clone: no lead
    password = await ensure_first_lead(redis, settings)
    assert password and password != DEMO_AGENT_PASSWORD and len(password) >= 16
    assert await ensure_first_lead(redis, settings) is None  # once: a lead exists now
    token = await _token(http, prod_gateway, "boss@example.com", password)
    status, me = await _call(http, prod_gateway, "GET", "/api/agent/me", token)
    assert status == 200 and me["agent"]["role"] == "lead"


async def test_demo_mode_seeds_the_demo_lead_and_says_so(accounts_redis, redis):
    settings = Settings(queue_namespace="secdemo", password_scrypt_log2_n=FAST.log2_n)
    lines = await asyncio.to_thread(prepare_accounts, accounts_redis.url, settings, True)
    text = "\n".join(lines)
    assert "DEMO MODE" in text and DEMO_AGENT_EMAIL in text and DEMO_AGENT_PASSWORD in text
    assert "first lead" not in text  # the demo lead is the lead
    accounts = AgentAccounts(redis, "secdemo", hasher=PasswordHasher(FAST))
    assert await accounts.login(DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD) is not None
    plain = await asyncio.to_thread(prepare_accounts, accounts_redis.url, settings, False)
    assert plain == []  # a lead exists: nothing to print, no new password


# -- the command line ----------------------------------------------------------------------------


async def test_the_accounts_cli_manages_accounts_end_to_end(http, fast_gateway, redis):
    await _create(redis, fast_gateway.namespace, role="lead")  # so ours may be disabled later
    login = _unique("cli")
    added = await asyncio.to_thread(
        _cli, fast_gateway, "add", login, "--name", "Cli Agent", "--skills", "general,disputes"
    )
    assert added.returncode == 0, added.stderr
    password = _shown_password(added.stdout)
    token = await _token(http, fast_gateway, login, password)
    _, me = await _call(http, fast_gateway, "GET", "/api/agent/me", token)
    assert me["agent"]["skills"] == ["general", "disputes"] and me["agent"]["role"] == "agent"

    listed = await asyncio.to_thread(_cli, fast_gateway, "list", "--json")
    assert listed.returncode == 0
    assert {"login": login, "disabled": False}.items() <= {
        a["login"]: a for a in json.loads(listed.stdout)
    }[login].items()

    for args in (("set-role", login, "lead"), ("set-skills", login, "complaints")):
        result = await asyncio.to_thread(_cli, fast_gateway, *args)
        assert result.returncode == 0, result.stderr
    await asyncio.sleep(SESSION_RECHECK)  # the session cache lapses: the agent is re-read
    _, me = await _call(http, fast_gateway, "GET", "/api/agent/me", token)
    assert me["agent"]["role"] == "lead" and me["agent"]["skills"] == ["complaints"]

    disabled = await asyncio.to_thread(_cli, fast_gateway, "disable", login)
    assert disabled.returncode == 0, disabled.stderr
    assert await _until_refused(http, fast_gateway, token) == 401
    assert (await _login(http, fast_gateway, login, password))[0] == 401
    enabled = await asyncio.to_thread(_cli, fast_gateway, "enable", login)
    assert enabled.returncode == 0
    token = await _token(http, fast_gateway, login, password)

    new_password = "a-new-password-from-stdin"
    reset = await asyncio.to_thread(
        _cli, fast_gateway, "reset-password", login, "--password-stdin", stdin=new_password + "\n"
    )
    assert reset.returncode == 0, reset.stderr
    assert new_password not in reset.stdout
    assert await _until_refused(http, fast_gateway, token) == 401
    assert (await _login(http, fast_gateway, login, password))[0] == 401
    await _token(http, fast_gateway, login, new_password)


async def test_the_accounts_cli_refuses_clearly_with_exit_codes(fast_gateway, redis):
    lead, _ = await _create(redis, fast_gateway.namespace, role="lead")
    cases = [
        (("disable", "nobody@example.com"), 1, "no account"),
        (("add", lead, "--name", "Again"), 1, "exists already"),
        (("add", "not a login", "--name", "X"), 2, "a login is"),
        (("add", _unique("x"), "--name", "X", "--skills", "rockets"), 2, "unknown skill"),
        (("add", _unique("x"), "--name", "X", "--password", "in-argv-12345"), 2, "unrecognized"),
        (("set-role", lead, "admin"), 2, "invalid choice"),
    ]
    for args, code, message in cases:
        result = await asyncio.to_thread(_cli, fast_gateway, *args)
        assert result.returncode == code, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    short = await asyncio.to_thread(
        _cli, fast_gateway, "add", _unique("x"), "--name", "X", "--password-stdin", stdin="short\n"
    )
    assert short.returncode == 2 and "password has" in short.stderr
    env_gateway = RunningGateway(fast_gateway.url, f"redis://127.0.0.1:{free_port()}/0", "x")
    unreachable = await asyncio.to_thread(_cli, env_gateway, "list")
    assert unreachable.returncode == 3 and "cannot reach Redis" in unreachable.stderr


async def test_the_cli_never_lets_the_last_active_lead_go(accounts_redis):
    gateway = RunningGateway("", accounts_redis.url, f"seclast{uuid.uuid4().hex[:6]}")
    added = await asyncio.to_thread(
        _cli, gateway, "add", "only-lead@example.com", "--name", "Only", "--role", "lead"
    )
    assert added.returncode == 0, added.stderr
    for args in (
        ("disable", "only-lead@example.com"),
        ("set-role", "only-lead@example.com", "agent"),
    ):
        result = await asyncio.to_thread(_cli, gateway, *args)
        assert result.returncode == 1 and "last active lead" in result.stderr


# -- the admin API -------------------------------------------------------------------------------


@pytest.mark.parametrize("method, path, body", ADMIN_ROUTES)
async def test_every_admin_route_is_for_leads_only(http, fast_gateway, redis, method, path, body):
    assert (await _call(http, fast_gateway, method, path, None, body))[0] == 401
    agent_token = await _token(http, fast_gateway, *await _create(redis, fast_gateway.namespace))
    status, error = await _call(http, fast_gateway, method, path, agent_token, body)
    assert status == 403 and error["error"]["code"] == "forbidden"
    lead_token = await _token(
        http, fast_gateway, *await _create(redis, fast_gateway.namespace, role="lead")
    )
    status, _ = await _call(
        http, fast_gateway, method, path, lead_token, body, origin="https://evil.example"
    )
    assert status == 403


async def test_a_lead_manages_accounts_through_the_admin_api(http, fast_gateway, redis):
    lead = await _token(http, fast_gateway, *await _create(redis, fast_gateway.namespace, "lead"))
    login = _unique("new")
    status, created = await _call(
        http,
        fast_gateway,
        "POST",
        "/api/admin/accounts",
        lead,
        {"login": login, "name": "New Agent", "skills": ["disputes"], "role": "agent"},
    )
    assert status == 201, created
    assert created["account"]["login"] == login and created["account"]["disabled"] is False
    agent = await _token(http, fast_gateway, login, created["password"])
    status, listed = await _call(http, fast_gateway, "GET", "/api/admin/accounts", lead)
    assert status == 200 and login in {a["login"] for a in listed["accounts"]}
    assert "password" not in json.dumps(listed["accounts"])

    base = f"/api/admin/accounts/{login}"
    assert await _me_status(http, fast_gateway, agent) == 200  # now in the gateway's cache
    assert (await _call(http, fast_gateway, "POST", base + "/disable", lead))[0] == 200
    assert await _me_status(http, fast_gateway, agent) == 401  # at once on this gateway
    assert (await _login(http, fast_gateway, login, created["password"]))[0] == 401
    assert (await _call(http, fast_gateway, "POST", base + "/enable", lead))[0] == 200
    agent = await _token(http, fast_gateway, login, created["password"])
    assert await _me_status(http, fast_gateway, agent) == 200

    status, reset = await _call(http, fast_gateway, "POST", base + "/reset-password", lead)
    assert status == 200 and reset["password"] != created["password"]
    assert await _me_status(http, fast_gateway, agent) == 401
    assert (await _login(http, fast_gateway, login, created["password"]))[0] == 401
    await _token(http, fast_gateway, login, reset["password"])

    status, changed = await _call(
        http, fast_gateway, "POST", base + "/skills", lead, {"skills": ["complaints", "general"]}
    )
    assert status == 200 and changed["account"]["skills"] == ["complaints", "general"]
    status, changed = await _call(
        http, fast_gateway, "POST", base + "/role", lead, {"role": "lead"}
    )
    assert status == 200 and changed["account"]["role"] == "lead"

    bad = [
        ("POST", "/api/admin/accounts", {"login": login, "name": "Dup"}, 409),
        ("POST", "/api/admin/accounts", {"login": "no spaces", "name": "X"}, 400),
        ("POST", "/api/admin/accounts", {"login": _unique("y"), "name": ""}, 400),
        ("POST", "/api/admin/accounts", {"login": _unique("y"), "name": "Y", "capacity": "3"}, 400),
        ("POST", "/api/admin/accounts", {"login": _unique("y"), "name": "Y", "role": "root"}, 400),
        ("POST", base + "/skills", {"skills": ["rockets"]}, 400),
        ("POST", base + "/skills", {"skills": "general"}, 400),
        ("POST", base + "/role", {}, 400),
        ("POST", "/api/admin/accounts/nobody@example.com/disable", None, 404),
    ]
    for method, path, body, expected in bad:
        status, error = await _call(http, fast_gateway, method, path, lead, body)
        assert status == expected, (path, body, error)
        assert error["error"]["message"]


async def test_the_admin_api_never_disables_or_demotes_the_last_active_lead(http, accounts_redis):
    namespace = f"seclone{uuid.uuid4().hex[:6]}"
    service, gateway = _gateway(
        "gateway-sec-last-lead", accounts_redis.url, namespace, {"PASSWORD_SCRYPT_LOG2_N": "12"}
    )
    client = Redis.from_url(accounts_redis.url, decode_responses=True)
    try:
        login, password = await _create(client, namespace, role="lead")
        with running([service], timeout=60):
            token = await _token(http, gateway, login, password)
            base = f"/api/admin/accounts/{login}"
            for path, body in ((base + "/disable", None), (base + "/role", {"role": "agent"})):
                status, error = await _call(http, gateway, "POST", path, token, body)
                assert status == 409 and "last active lead" in error["error"]["message"]
            second, _ = await _create(client, namespace, role="lead")
            status, _ = await _call(http, gateway, "POST", base + "/role", token, {"role": "agent"})
            assert status == 200  # another active lead exists now
            await asyncio.sleep(SESSION_RECHECK)
            status, _ = await _call(http, gateway, "GET", "/api/admin/accounts", token)
            assert status == 403  # no longer a lead
            assert await client.smembers(f"{namespace}:web:leads") == {second}
    finally:
        await client.close()


# -- sessions ------------------------------------------------------------------------------------


async def test_a_session_ends_at_its_absolute_lifetime_however_active(http, prod_gateway, redis):
    settings = Settings()
    assert settings.agent_session_max_seconds == 12 * 3600
    assert settings.agent_session_idle_seconds < settings.agent_session_max_seconds
    login, password = await _create(redis, prod_gateway.namespace)
    sessions = f"{prod_gateway.namespace}:web:session:"
    token = await _token(http, prod_gateway, login, password)
    key = sessions + hashlib.sha256(token.encode()).hexdigest()
    stored = json.loads(await redis.get(key))
    # as if logged in 30 s short of 12 hours ago and used ever since: renewal stops at the end
    stored["created_at"] = time.time() - settings.agent_session_max_seconds + 30
    stored["expires_at"] = time.time() + 5
    await redis.set(key, json.dumps(stored), ex=600)
    assert await _me_status(http, prod_gateway, token) == 200
    assert 0 < await redis.ttl(key) <= 30
    assert json.loads(await redis.get(key))["expires_at"] <= stored["created_at"] + 12 * 3600

    other = await _token(http, prod_gateway, login, password)
    other_key = sessions + hashlib.sha256(other.encode()).hexdigest()
    stored = json.loads(await redis.get(other_key))
    stored["created_at"] = time.time() - settings.agent_session_max_seconds - 1
    await redis.set(other_key, json.dumps(stored), ex=600)  # the sliding expiry alone: alive
    assert await _me_status(http, prod_gateway, other) == 401
    assert not await redis.exists(other_key)


# -- password hashing ----------------------------------------------------------------------------


async def test_default_hashing_is_scrypt_at_owasp_cost_and_weaker_hashes_are_rehashed_on_login(
    http, prod_gateway, redis
):
    assert PRODUCTION == ScryptParams(log2_n=17, r=8, p=1)
    assert Settings().password_scrypt_log2_n == 17
    assert AgentAccounts.from_settings(redis, Settings()).hasher.params == PRODUCTION
    # an account in the first format: hex salt and hash fields, N=2^14
    login, password = _unique("legacy"), "a-legacy-password"
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=2**14, r=8, p=1, maxmem=64 * 1024 * 1024, dklen=32
    )
    key = f"{prod_gateway.namespace}:web:agent:{login}"
    agent = Agent(login=login, name="Legacy", skills=["general"])
    record = {"agent": json.dumps(agent.public()), "salt": salt.hex(), "hash": digest.hex()}
    await redis.hset(key, mapping=record)
    assert (await _login(http, prod_gateway, login, "not-the-password"))[0] == 401
    assert await redis.hget(key, "password") is None  # a failed login changes nothing
    await _token(http, prod_gateway, login, password)
    stored = await redis.hgetall(key)
    assert stored["password"].startswith("scrypt$ln=17,r=8,p=1$")
    assert "salt" not in stored and "hash" not in stored and password not in str(stored)
    await _token(http, prod_gateway, login, password)  # the new hash verifies
    # a new account made by the gateway's admin API is hashed at the production cost too
    lead_login, lead_password = await _create(redis, prod_gateway.namespace, role="lead")
    lead = await _token(http, prod_gateway, lead_login, lead_password)
    assert (
        await redis.hget(f"{prod_gateway.namespace}:web:agent:{lead_login}", "password")
    ).startswith("scrypt$ln=17,")  # FAST (2^12) was weaker: rehashed at this login
    new_login = _unique("api")
    status, _ = await _call(
        http, prod_gateway, "POST", "/api/admin/accounts", lead, {"login": new_login, "name": "N"}
    )
    assert status == 201
    encoded = await redis.hget(f"{prod_gateway.namespace}:web:agent:{new_login}", "password")
    assert encoded.startswith("scrypt$ln=17,r=8,p=1$")


# -- the admin page ------------------------------------------------------------------------------


@pytest.mark.browser
async def test_the_console_accounts_view_is_for_leads_and_shows_a_new_password_once(
    browser, fast_gateway, redis
):
    errors: list[str] = []
    lead_login, lead_password = await _create(redis, fast_gateway.namespace, role="lead")

    async def console(login: str, password: str):
        context = await browser.new_context(viewport={"width": 1400, "height": 900})
        page = await context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(30_000)
        await page.goto(f"{fast_gateway.url}/agent")
        await page.locator("#login-name").fill(login)
        await page.locator("#login-password").fill(password)
        await page.get_by_role("button", name="Log in").click()
        await page.locator("#presence").wait_for()
        return page

    lead = await console(lead_login, lead_password)
    await lead.get_by_role("button", name="Accounts").click()
    hostile = '<img src=x onerror="window.__xss=1">'
    new_login = _unique("page")
    await lead.get_by_label("New login (email)").fill(new_login)
    await lead.get_by_label("Name").fill(hostile)
    await lead.get_by_label("general").check()
    await lead.get_by_role("button", name="Add account").click()
    password = await lead.locator("[data-admin-password]").inner_text()
    row = lead.locator(f"tr[data-account='{new_login}']")
    await row.wait_for()
    assert hostile in await row.inner_text()  # shown as text, never as markup
    assert await lead.evaluate("window.__xss") is None
    await lead.screenshot(path=str(LOGS.parent / "screenshots" / "accounts-admin.png"))

    await row.get_by_role("button", name="Disable").click()
    await row.locator("text=disabled").wait_for()
    await row.get_by_role("button", name="Enable").click()
    await row.locator("text=active").wait_for()

    agent = await console(new_login, password)
    await agent.locator("#me-name").wait_for()
    assert await agent.get_by_role("button", name="Accounts").count() == 0
    assert errors == []
