"""Agent accounts and sessions, in Redis (a client with ``decode_responses=True``).

Passwords are hashed with scrypt (stdlib ``hashlib.scrypt``, N=2^14, r=8, p=1) and a random
16-byte salt per account; the hash is compared in constant time. A login returns a session token
(32 random bytes, URL-safe) that the console sends as ``Authorization: Bearer <token>``; Redis
keeps only the token's SHA-256, with an expiry (8 hours by default, renewed while the console is
in use). A gateway trusts a session it has checked for 5 seconds, so a logout through another
gateway takes effect there within 5 seconds. Repeated failed logins for one account are throttled.

The demo agent (:data:`DEMO_AGENT_LOGIN`) is created by the gateway at start (idempotent) so a
fresh install can be tried at once; the launcher prints its credentials.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass, field

from redis.asyncio import Redis

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
)

SESSION_SECONDS = 8 * 3600
SESSION_RECHECK = 5.0  # seconds a process trusts a session it checked (logout elsewhere: <= 5 s)
MAX_FAILED_LOGINS = 10
FAILED_LOGIN_WINDOW = 300
ROLES = ("agent", "lead")

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024, "dklen": 32}


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
class Session:
    token: str
    agent: Agent
    expires_at: float


class LoginThrottled(RuntimeError):
    """Too many failed logins for this account; try again later."""


def hash_password(password: str, salt: bytes) -> bytes:
    """scrypt(password, salt): slow on purpose."""
    return hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)


def _token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AgentAccounts:
    """Accounts (hashed passwords) and expiring sessions under ``<namespace>:web:``."""

    def __init__(self, redis: Redis, namespace: str, session_seconds: int = SESSION_SECONDS):
        self._redis = redis
        self._prefix = f"{namespace}:web"
        self._session_seconds = session_seconds
        self._cache: dict[str, tuple[Session, float]] = {}

    def _account_key(self, login: str) -> str:
        return f"{self._prefix}:agent:{login.lower()}"

    def _session_key(self, token: str) -> str:
        return f"{self._prefix}:session:{_token_key(token)}"

    async def create(self, agent: Agent, password: str, *, replace: bool = False) -> bool:
        """Store an account; False when it exists and ``replace`` is not set."""
        if agent.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        if len(password) < 8:
            raise ValueError("password must have at least 8 characters")
        salt = secrets.token_bytes(16)
        digest = await asyncio.to_thread(hash_password, password, salt)
        record = {
            "agent": json.dumps(asdict(agent)),
            "salt": salt.hex(),
            "hash": digest.hex(),
        }
        key = self._account_key(agent.login)
        if not replace and await self._redis.exists(key):
            return False
        await self._redis.hset(key, mapping=record)
        return True

    async def get(self, login: str) -> Agent | None:
        raw = await self._redis.hget(self._account_key(login), "agent")
        return Agent(**json.loads(raw)) if raw else None

    async def login(self, login: str, password: str) -> Session | None:
        """A new session when the password is right, else None (throttled after many failures)."""
        failures_key = f"{self._prefix}:login-failures:{login.lower()}"
        failures = int(await self._redis.get(failures_key) or 0)
        if failures >= MAX_FAILED_LOGINS:
            raise LoginThrottled("too many failed logins; try again in a few minutes")
        record = await self._redis.hgetall(self._account_key(login))
        salt = bytes.fromhex(record["salt"]) if record else secrets.token_bytes(16)
        digest = await asyncio.to_thread(hash_password, password, salt)  # same cost either way
        if not record or not hmac.compare_digest(digest.hex(), record["hash"]):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(failures_key)
                pipe.expire(failures_key, FAILED_LOGIN_WINDOW)
                await pipe.execute()
            return None
        await self._redis.delete(failures_key)
        agent = Agent(**json.loads(record["agent"]))
        token = secrets.token_urlsafe(32)
        expires_at = time.time() + self._session_seconds
        payload = json.dumps({"login": agent.login, "expires_at": expires_at})
        await self._redis.set(self._session_key(token), payload, ex=self._session_seconds)
        return Session(token=token, agent=agent, expires_at=expires_at)

    async def session(self, token: str) -> Session | None:
        """The live session for a token, or None.

        A session checked in Redis is trusted by this process for ``SESSION_RECHECK`` seconds,
        and its expiry is renewed in Redis at most once a minute while it is in use.
        """
        if not token or len(token) > 200:
            return None
        key = self._session_key(token)
        now = time.time()
        cached = self._cache.get(key)
        if cached is not None and now - cached[1] < SESSION_RECHECK:
            return cached[0]
        raw = await self._redis.get(key)
        agent = await self.get(json.loads(raw)["login"]) if raw is not None else None
        if agent is None:
            self._cache.pop(key, None)
            return None
        stored = json.loads(raw)
        expires_at = float(stored["expires_at"])
        if expires_at - now < self._session_seconds - 60:
            expires_at = now + self._session_seconds
            payload = json.dumps({"login": agent.login, "expires_at": expires_at})
            await self._redis.set(key, payload, ex=self._session_seconds)
        session = Session(token=token, agent=agent, expires_at=expires_at)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (session, now)
        return session

    async def logout(self, token: str) -> None:
        self._cache.pop(self._session_key(token), None)
        await self._redis.delete(self._session_key(token))


async def ensure_demo_agent(accounts: AgentAccounts) -> tuple[str, str]:
    """Create the demo agent if missing; returns its (login, password) for the launcher."""
    agent = Agent(
        login=DEMO_AGENT_EMAIL,
        name="Dana (demo agent)",
        skills=list(DEMO_AGENT_SKILLS),
        capacity=3,
        role="lead",
    )
    await accounts.create(agent, DEMO_AGENT_PASSWORD)
    return DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD
