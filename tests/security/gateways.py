"""Real gateways for the security tests of limits, input and headers (no fixtures here).

:func:`gateway` starts ``python -m bot.web`` on a free port against a real Redis with the given
settings (e.g. low limits), in its own namespace, and stops it afterwards; several gateways on
one Redis and namespace share their limits. Rasa points at a port nobody listens on: these
tests need no bot. :func:`lead_token` creates a support-lead account and logs it in.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import aiohttp
from redis.asyncio import Redis

from bot.config import PROJECT_ROOT
from bot.runtime import services
from bot.runtime.ports import free_port
from bot.runtime.services import Service
from bot.web.auth import Agent, AgentAccounts

LOGS = PROJECT_ROOT / "test-artifacts" / "logs"
PASSWORD = "security-test-password"


@dataclass
class RunningGateway:
    url: str
    redis_url: str
    namespace: str
    service: Service

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    def ws_url(self, path: str) -> str:
        return self.url.replace("http://", "ws://") + path


@contextmanager
def gateway(
    redis_url: str, env: dict[str, str] | None = None, namespace: str | None = None
) -> Iterator[RunningGateway]:
    port = free_port()
    namespace = namespace or f"sec{uuid.uuid4().hex[:8]}"
    full_env = {
        "REDIS_URL": redis_url,
        "RASA_URL": f"http://127.0.0.1:{free_port()}",
        "SUPPORT_QUEUE_NAMESPACE": namespace,
        "GATEWAY_PORT": str(port),
        **(env or {}),
    }
    name = f"gateway-{namespace}-{port}"
    service = services.gateway_service("127.0.0.1", port, LOGS, full_env, name=name)
    with services.running([service], timeout=60):
        yield RunningGateway(f"http://127.0.0.1:{port}", redis_url, namespace, service)


async def create_agent(redis_url: str, namespace: str, role: str = "agent") -> str:
    login = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        agent = Agent(login=login, name=f"Test {role}", skills=["general"], role=role)
        await AgentAccounts(redis, namespace).create(agent, PASSWORD)
    finally:
        await redis.close()
    return login


async def lead_token(http: aiohttp.ClientSession, running: RunningGateway) -> str:
    login = await create_agent(running.redis_url, running.namespace, role="lead")
    body = {"login": login, "password": PASSWORD}
    async with http.post(f"{running.url}/api/agent/login", json=body) as response:
        assert response.status == 200, await response.text()
        return (await response.json())["token"]


async def new_conversation(http: aiohttp.ClientSession, running: RunningGateway) -> tuple[str, str]:
    async with http.post(f"{running.url}/api/conversations") as response:
        assert response.status == 201, await response.text()
        body = await response.json()
    return body["conversation_id"], body["token"]
