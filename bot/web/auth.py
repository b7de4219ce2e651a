"""Agent accounts and sessions, in Redis (a client with ``decode_responses=True``).

**Accounts** are hashes ``<ns>:web:agent:<login>`` (the agent's JSON, the password hash, a
``disabled`` flag and a session ``generation``), listed in the set ``<ns>:web:agents``; the set
``<ns>:web:leads`` holds the active (enabled) leads, so "never disable or demote the last active
lead" is checked and changed in one optimistic transaction (WATCH/MULTI). Accounts are managed
with ``python -m bot.accounts`` (:mod:`bot.accounts`) or the lead-only admin API
(:mod:`bot.web.admin_api`).

**Passwords** are hashed with scrypt at OWASP's cost (N=2^17, r=8, p=1; :mod:`bot.web.passwords`),
in worker threads, a bounded number at once. The hash carries its parameters; a successful login
with a weaker stored hash (including the first format, N=2^14) rehashes it.

**Sessions**: a login returns a token (32 random bytes, URL-safe) that the console sends as
``Authorization: Bearer <token>``; Redis keeps only the token's SHA-256 with an expiry. A session
ends after ``idle`` seconds without use (sliding, 8 hours by default) and in any case
``absolute`` seconds after the login (12 hours by default). Disabling an account or resetting its
password bumps its generation, which ends every session it has. A gateway trusts a session it has
checked for 5 seconds, so a logout, disable or reset through another gateway or the CLI takes
effect there within 5 seconds (at once on the gateway that did it). Repeated failed logins for
one account are throttled.

The demo agent (:data:`DEMO_AGENT_LOGIN`, a published password) exists only in demo mode
(``SUPPORT_DEMO``): the gateway then creates it at start (idempotent).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from dataclasses import replace as evolve
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from bot import keys
from bot.config import Settings
from bot.web.passwords import PRODUCTION, PasswordHasher, legacy_encoded

DEMO_AGENT_EMAIL = "demo@pennantpay.example"
DEMO_AGENT_PASSWORD = "pennant-demo"
DEMO_AGENT_LOGIN = f"{DEMO_AGENT_EMAIL} / password {DEMO_AGENT_PASSWORD}"
DEMO_AGENT_SKILLS = (
    "general",
    "card_security",
    "disputes",
    "financial_support",
    "complaints",
    "bereavement",
    "vulnerable_customers",
)

SESSION_SECONDS = 8 * 3600  # sliding: idle this long and the session ends
ABSOLUTE_SESSION_SECONDS = 12 * 3600  # whatever the use, a session ends this long after login
SESSION_RECHECK = 5.0  # seconds a process trusts a session it checked (logout elsewhere: <= 5 s)
MAX_FAILED_LOGINS = 10
FAILED_LOGIN_WINDOW = 300
ROLES = ("agent", "lead")
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 200
LOGIN_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._%+@-]{0,199}")
SKILL_PATTERN = re.compile(r"\*|[a-z0-9][a-z0-9_.\-]{0,63}")  # the queue's topic rule; * = all
MAX_SKILLS = 30
MAX_NAME_CHARS = 80
MAX_CAPACITY = 20


@dataclass
class Agent:
    """An agent account as the console and the queue see it (never the password hash)."""

    login: str
    name: str
    skills: list[str] = field(default_factory=list)
    capacity: int = 3
    role: str = "agent"
    auto_assign: bool = False  # pushed work instead of claiming from the console

    def public(self) -> dict:
        return asdict(self)


@dataclass
class Account:
    """An account as its administrators see it: the agent and whether it may log in."""

    agent: Agent
    disabled: bool = False

    def public(self) -> dict:
        return {**self.agent.public(), "disabled": self.disabled}


@dataclass
class Session:
    token: str
    agent: Agent
    expires_at: float


class LoginThrottled(RuntimeError):
    """Too many failed logins for this account; try again later."""


class AccountError(ValueError):
    """An account operation that cannot be done; ``code`` says why."""

    code = "invalid"


class InvalidAccount(AccountError):
    code = "invalid"


class UnknownAccount(AccountError):
    code = "unknown"


class AccountExists(AccountError):
    code = "exists"


class LastLead(AccountError):
    code = "last_lead"


def validate_login(login: str) -> str:
    """The login, lower-cased, or InvalidAccount."""
    if not isinstance(login, str) or not LOGIN_PATTERN.fullmatch(login):
        raise InvalidAccount(
            "a login is 1-200 letters, digits or ._%+@- (an email address works), "
            "starting with a letter or digit"
        )
    return login.lower()


def validate_password(password: str) -> str:
    if not isinstance(password, str) or not (
        MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS
    ):
        raise InvalidAccount(f"a password has {MIN_PASSWORD_CHARS}-{MAX_PASSWORD_CHARS} characters")
    return password


def validate_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidAccount(f"role must be one of {', '.join(ROLES)}")
    return role


def validate_skills(skills: Any, known: Any = None) -> list[str]:
    """Distinct skill names (topics), in the order given; ``known`` limits them when given."""
    if not isinstance(skills, list | tuple) or len(skills) > MAX_SKILLS:
        raise InvalidAccount(f"skills are a list of at most {MAX_SKILLS} topic names")
    result: list[str] = []
    for skill in skills:
        if not isinstance(skill, str) or not SKILL_PATTERN.fullmatch(skill):
            raise InvalidAccount(
                "a skill is a topic: 1-64 of a-z, 0-9, '_', '-', '.' (or * for every topic)"
            )
        if known is not None and skill != "*" and skill not in known:
            raise InvalidAccount(f"unknown skill {skill!r}; known: {', '.join(sorted(known))}")
        if skill not in result:
            result.append(skill)
    return result


def validate_agent(agent: Agent) -> Agent:
    validate_login(agent.login)
    validate_role(agent.role)
    validate_skills(agent.skills)
    name = agent.name.strip() if isinstance(agent.name, str) else ""
    if not name or len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise InvalidAccount(f"a name has 1-{MAX_NAME_CHARS} printable characters")
    if not isinstance(agent.capacity, int) or not 1 <= agent.capacity <= MAX_CAPACITY:
        raise InvalidAccount(f"capacity is a whole number from 1 to {MAX_CAPACITY}")
    return evolve(agent, name=name)


def generate_password() -> str:
    """A random password to show once (20 URL-safe characters, 120 bits)."""
    return secrets.token_urlsafe(15)


def _token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _stored_hash(record: dict[str, str]) -> str | None:
    if record.get("password"):
        return record["password"]
    if record.get("salt") and record.get("hash"):  # the first format: hex fields, N=2^14
        return legacy_encoded(record["salt"], record["hash"])
    return None


def _account(record: dict[str, str]) -> Account:
    return Account(Agent(**json.loads(record["agent"])), disabled=record.get("disabled") == "1")


class AgentAccounts:
    """Accounts (hashed passwords) and expiring sessions under ``<namespace>:web:``."""

    def __init__(
        self,
        redis: Redis,
        namespace: str,
        session_seconds: int = SESSION_SECONDS,
        *,
        absolute_seconds: int = ABSOLUTE_SESSION_SECONDS,
        hasher: PasswordHasher | None = None,
    ):
        self._redis = redis
        self._ns = namespace
        self._session_seconds = session_seconds
        self._absolute_seconds = absolute_seconds
        self.hasher = hasher or PasswordHasher()
        self._cache: dict[str, tuple[Session, float]] = {}
        self._indexed = False

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings) -> AgentAccounts:
        """The store with the configured session lifetimes and password cost."""
        params = evolve(PRODUCTION, log2_n=settings.password_scrypt_log2_n)
        return cls(
            redis,
            settings.queue_namespace,
            settings.agent_session_idle_seconds,
            absolute_seconds=settings.agent_session_max_seconds,
            hasher=PasswordHasher(params, concurrency=settings.password_hash_concurrency),
        )

    def _account_key(self, login: str) -> str:
        return keys.WEB_ACCOUNT.format(ns=self._ns, login=login.lower())

    def _session_key(self, token: str) -> str:
        return keys.WEB_SESSION.format(ns=self._ns, token_hash=_token_key(token))

    def _index_key(self) -> str:
        return keys.WEB_ACCOUNTS.format(ns=self._ns)

    def _leads_key(self) -> str:
        return keys.WEB_LEADS.format(ns=self._ns)

    async def _ensure_index(self) -> None:
        """Index accounts stored before the index existed (once per Redis; a SCAN)."""
        if self._indexed:
            return
        marker = keys.WEB_ACCOUNTS_INDEXED.format(ns=self._ns)
        if not await self._redis.exists(marker):
            async for key in self._redis.scan_iter(
                match=keys.WEB_ACCOUNT.pattern(ns=self._ns), count=500, _type="hash"
            ):
                record = await self._redis.hgetall(key)
                if "agent" not in record:
                    continue
                account = _account(record)
                login = account.agent.login.lower()
                await self._redis.sadd(self._index_key(), login)
                if account.agent.role == "lead" and not account.disabled:
                    await self._redis.sadd(self._leads_key(), login)
            await self._redis.set(marker, "1")
        self._indexed = True

    # -- accounts ------------------------------------------------------------------------

    async def create(self, agent: Agent, password: str, *, replace: bool = False) -> bool:
        """Store an account; False when it exists and ``replace`` is not set.

        Replacing an account ends its sessions and must leave an active lead.
        """
        agent = validate_agent(agent)
        validate_password(password)
        await self._ensure_index()
        key = self._account_key(agent.login)
        if not replace and await self._redis.exists(key):
            return False
        encoded = await self.hasher.hash(password)
        login = agent.login.lower()
        leads = self._leads_key()
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key, leads)
                    if await pipe.exists(key):
                        if not replace:
                            return False
                        if (
                            agent.role != "lead"
                            and await pipe.sismember(leads, login)
                            and await pipe.scard(leads) <= 1
                        ):
                            raise LastLead("this is the last active lead: it must stay a lead")
                    pipe.multi()
                    record = {"agent": json.dumps(asdict(agent)), "password": encoded}
                    pipe.hset(key, mapping={**record, "disabled": "0"})
                    pipe.hdel(key, "salt", "hash")
                    pipe.hincrby(key, "generation", 1)  # a replaced account's sessions end
                    pipe.sadd(self._index_key(), login)
                    (pipe.sadd if agent.role == "lead" else pipe.srem)(leads, login)
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        self._forget_sessions(login)
        return True

    async def get(self, login: str) -> Agent | None:
        raw = await self._redis.hget(self._account_key(login), "agent")
        return Agent(**json.loads(raw)) if raw else None

    async def account(self, login: str) -> Account | None:
        record = await self._redis.hgetall(self._account_key(login))
        return _account(record) if record.get("agent") else None

    async def list(self) -> list[Account]:
        """Every account, by login."""
        await self._ensure_index()
        logins = sorted(await self._redis.smembers(self._index_key()))
        accounts = []
        for login in logins:
            account = await self.account(login)
            if account is not None:
                accounts.append(account)
        return accounts

    async def has_active_lead(self) -> bool:
        await self._ensure_index()
        return await self._redis.scard(self._leads_key()) > 0

    async def _update(
        self, login: str, change: Callable[[Account], Account], *, revoke: bool = False
    ) -> Account:
        """Apply ``change`` to the account atomically, keeping at least one active lead."""
        await self._ensure_index()
        key = self._account_key(login)
        leads = self._leads_key()
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key, leads)
                    record = await pipe.hgetall(key)
                    if not record.get("agent"):
                        raise UnknownAccount(f"no account {login!r}")
                    before = _account(record)
                    after = change(before)
                    name = before.agent.login.lower()
                    active = after.agent.role == "lead" and not after.disabled
                    if not active and await pipe.sismember(leads, name):
                        if await pipe.scard(leads) <= 1:
                            raise LastLead(
                                "this is the last active lead: make another account a lead first"
                            )
                    pipe.multi()
                    pipe.hset(
                        key,
                        mapping={
                            "agent": json.dumps(asdict(after.agent)),
                            "disabled": "1" if after.disabled else "0",
                        },
                    )
                    if revoke:
                        pipe.hincrby(key, "generation", 1)
                    (pipe.sadd if active else pipe.srem)(leads, name)
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        if revoke:
            self._forget_sessions(name)
        return after

    async def set_disabled(self, login: str, disabled: bool) -> Account:
        """Disable (its sessions end at once) or enable an account."""
        return await self._update(login, lambda a: evolve(a, disabled=disabled), revoke=disabled)

    async def set_role(self, login: str, role: str) -> Account:
        validate_role(role)
        return await self._update(login, lambda a: evolve(a, agent=evolve(a.agent, role=role)))

    async def set_skills(self, login: str, skills: list[str]) -> Account:
        skills = validate_skills(skills)
        return await self._update(login, lambda a: evolve(a, agent=evolve(a.agent, skills=skills)))

    async def reset_password(self, login: str, password: str) -> None:
        """A new password; every session of the account ends."""
        validate_password(password)
        key = self._account_key(login)
        if not await self._redis.hexists(key, "agent"):
            raise UnknownAccount(f"no account {login!r}")
        encoded = await self.hasher.hash(password)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, "password", encoded)
            pipe.hdel(key, "salt", "hash")
            pipe.hincrby(key, "generation", 1)
            pipe.delete(keys.WEB_LOGIN_FAILURES.format(ns=self._ns, login=login.lower()))
            await pipe.execute()
        self._forget_sessions(login)

    async def _rehash(self, login: str, verified: str, password: str) -> None:
        """Store a stronger hash of a password just verified, unless it changed meanwhile."""
        encoded = await self.hasher.hash(password)
        key = self._account_key(login)
        async with self._redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                if _stored_hash(await pipe.hgetall(key)) != verified:
                    return  # reset meanwhile: never write the old password back
                pipe.multi()
                pipe.hset(key, "password", encoded)
                pipe.hdel(key, "salt", "hash")
                await pipe.execute()
            except WatchError:
                return

    # -- sessions ------------------------------------------------------------------------

    async def login(self, login: str, password: str) -> Session | None:
        """A new session when the password is right, else None (throttled after many failures)."""
        failures_key = keys.WEB_LOGIN_FAILURES.format(ns=self._ns, login=login.lower())
        failures = int(await self._redis.get(failures_key) or 0)
        if failures >= MAX_FAILED_LOGINS:
            raise LoginThrottled("too many failed logins; try again in a few minutes")
        record = await self._redis.hgetall(self._account_key(login))
        stored = _stored_hash(record) if record.get("agent") else None
        if stored is None or record.get("disabled") == "1":
            await self.hasher.burn(password)  # same cost either way: no timing oracle
            ok = False
        else:
            ok = await self.hasher.verify(password, stored)
        if not ok:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(failures_key)
                pipe.expire(failures_key, FAILED_LOGIN_WINDOW)
                await pipe.execute()
            return None
        await self._redis.delete(failures_key)
        if self.hasher.needs_rehash(stored):
            await self._rehash(login, stored, password)
        agent = Agent(**json.loads(record["agent"]))
        token = secrets.token_urlsafe(32)
        now = time.time()
        expires_at = min(now + self._session_seconds, now + self._absolute_seconds)
        payload = {
            "login": agent.login,
            "created_at": now,
            "expires_at": expires_at,
            "generation": int(record.get("generation") or 0),
        }
        await self._redis.set(
            self._session_key(token), json.dumps(payload), ex=max(1, math.ceil(expires_at - now))
        )
        return Session(token=token, agent=agent, expires_at=expires_at)

    async def session(self, token: str) -> Session | None:
        """The live session for a token, or None.

        A session checked in Redis is trusted by this process for ``SESSION_RECHECK`` seconds,
        and its expiry is renewed in Redis at most once a minute while it is in use, never past
        its absolute end. A disabled account, a password reset (a new generation) or the
        absolute lifetime ends it.
        """
        if not token or len(token) > 200:
            return None
        key = self._session_key(token)
        now = time.time()
        cached = self._cache.get(key)
        if cached is not None and now - cached[1] < SESSION_RECHECK and cached[0].expires_at > now:
            return cached[0]
        self._cache.pop(key, None)
        raw = await self._redis.get(key)
        stored = json.loads(raw) if raw is not None else None
        if not isinstance(stored, dict) or "created_at" not in stored:
            return None  # unknown, expired, or from before absolute lifetimes: log in again
        agent_raw, disabled, generation = await self._redis.hmget(
            self._account_key(stored["login"]), "agent", "disabled", "generation"
        )
        ends_at = float(stored["created_at"]) + self._absolute_seconds
        if (
            agent_raw is None
            or disabled == "1"
            or int(generation or 0) != int(stored.get("generation", 0))
            or now >= ends_at
        ):
            await self._redis.delete(key)
            return None
        agent = Agent(**json.loads(agent_raw))
        expires_at = float(stored["expires_at"])
        if expires_at - now < self._session_seconds - 60 and expires_at < ends_at:
            expires_at = min(now + self._session_seconds, ends_at)
            stored["expires_at"] = expires_at
            await self._redis.set(key, json.dumps(stored), ex=max(1, math.ceil(expires_at - now)))
        session = Session(token=token, agent=agent, expires_at=expires_at)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (session, now)
        return session

    def _forget_sessions(self, login: str) -> None:
        """Drop this process's cached sessions of an account (revocation is at once here)."""
        login = login.lower()
        for key in [k for k, (s, _) in self._cache.items() if s.agent.login.lower() == login]:
            self._cache.pop(key, None)

    async def logout(self, token: str) -> None:
        self._cache.pop(self._session_key(token), None)
        await self._redis.delete(self._session_key(token))


async def ensure_demo_agent(accounts: AgentAccounts) -> tuple[str, str]:
    """Create the demo agent if missing (demo mode only); returns its (login, password)."""
    agent = Agent(
        login=DEMO_AGENT_EMAIL,
        name="Dana (demo agent)",
        skills=list(DEMO_AGENT_SKILLS),
        capacity=3,
        role="lead",
    )
    await accounts.create(agent, DEMO_AGENT_PASSWORD)
    return DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD
