"""The gateway's dependencies and their health: Redis, Rasa, the action server and the queue.

``GET /healthz`` answers with one entry per dependency (``status``: ``up``, ``down`` or
``degraded``, and a ``detail`` when not up) and an overall status a load balancer can use:

* **200** whenever Redis answers: the gateway can serve. With Rasa or the action server down it
  still serves: customers' messages are stored, "Talk to a person" and typed requests for a
  person open tickets straight in the queue, and agents' chats go on (:mod:`bot.web.fallback`).
  The body then says ``"status": "degraded"`` and ``"person_reachable": true``.
* **503** when Redis does not answer: conversations, the queue and the agents' chats all live
  there, so nothing can be served and the balancer should use another gateway.

Rasa's entry lists each replica of ``RASA_URLS`` (``replicas``: ``rasa-<n>`` in that order, up
or down; :mod:`bot.web.rasa_ring`): ``up`` when all answer, ``degraded`` while some do (their
conversations use the next replica on the ring), ``down`` when none does.

The action server is probed at its own ``/health`` (``ACTION_SERVER_URL`` without ``/webhook``):
Rasa's ``/status`` says nothing about it. The same probe tells a turn that Rasa answered with
nothing because its action server is down (:meth:`Dependencies.actions_up`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp
import redis.exceptions

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from bot.web.desk import Desk
    from bot.web.rasa_ring import RasaRing

PROBE_SECONDS = 2.0
UP, DOWN, DEGRADED = "up", "down", "degraded"


def action_health_url(action_server_url: str) -> str:
    """The action server's ``/health`` from its webhook URL (``.../webhook``)."""
    base = action_server_url.rstrip("/")
    if base.endswith("/webhook"):
        base = base[: -len("/webhook")]
    return base + "/health"


class Dependencies:
    """Probes each dependency once per call (short timeouts, no retries)."""

    def __init__(
        self,
        redis: Redis,
        rasa: RasaRing,
        desk: Desk,
        session: aiohttp.ClientSession,
        action_server_url: str,
    ) -> None:
        self._redis = redis
        self._rasa = rasa
        self._desk = desk
        self._session = session
        self._actions_health = action_health_url(action_server_url)

    async def actions_up(self) -> bool:
        """True when the action server answers its /health."""
        try:
            timeout = aiohttp.ClientTimeout(total=PROBE_SECONDS)
            async with self._session.get(self._actions_health, timeout=timeout) as response:
                return response.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False

    async def _redis_status(self) -> dict[str, Any]:
        try:
            await asyncio.wait_for(self._redis.ping(), PROBE_SECONDS)
        except (redis.exceptions.RedisError, asyncio.TimeoutError, OSError) as error:
            return {"status": DOWN, "detail": f"Redis does not answer ({type(error).__name__})"}
        return {"status": UP}

    async def _rasa_status(self) -> dict[str, Any]:
        replicas = await self._rasa.statuses()
        up = sum(replica["status"] == UP for replica in replicas)
        if up == len(replicas):
            return {"status": UP, "replicas": replicas}
        if up:
            detail = "some Rasa replicas do not answer; their conversations use the next replica"
            return {"status": DEGRADED, "detail": detail, "replicas": replicas}
        return {"status": DOWN, "detail": "Rasa's /status does not answer", "replicas": replicas}

    async def _actions_status(self) -> dict[str, Any]:
        if await self.actions_up():
            return {"status": UP}
        return {"status": DOWN, "detail": "the action server's /health does not answer"}

    async def _queue_status(self) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self._desk.health(), PROBE_SECONDS)
        except (redis.exceptions.RedisError, asyncio.TimeoutError, OSError) as error:
            return {"status": DOWN, "detail": f"the queue is not readable ({type(error).__name__})"}

    async def report(self) -> tuple[int, dict[str, Any]]:
        """The HTTP status for a load balancer and the body of /healthz."""
        redis_s, rasa_s, actions_s, queue_s = await asyncio.gather(
            self._redis_status(), self._rasa_status(), self._actions_status(), self._queue_status()
        )
        dependencies = {
            "redis": redis_s,
            "rasa": rasa_s,
            "action_server": actions_s,
            "queue": queue_s,
        }
        serving = redis_s["status"] == UP and queue_s["status"] != DOWN
        bot_up = rasa_s["status"] != DOWN and actions_s["status"] == UP
        if not serving:
            status = DOWN
        elif bot_up and rasa_s["status"] == UP and queue_s["status"] == UP:
            status = "ok"
        else:
            status = DEGRADED
        body: dict[str, Any] = {
            "status": status,
            "serving": serving,
            "bot_available": bot_up,
            "person_reachable": serving,
            "dependencies": dependencies,
        }
        if serving and not bot_up:
            body["note"] = (
                "the assistant is unavailable; this gateway still serves: messages are stored and "
                "requests for a person open tickets straight in the queue"
            )
        return (200 if serving else 503), body
