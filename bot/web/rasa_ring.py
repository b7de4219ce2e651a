"""One conversation on one Rasa replica: a consistent-hash ring over the replicas, with failover.

Rasa open source's Redis lock store issues tickets with a read-add-write that is not atomic
(rasa issue #9213), so two replicas must not run turns of one conversation at once. The gateway
therefore sends everything of a conversation (webhook turns, tracker reads, ``trigger_intent``,
the handback and wait-check actions) to one replica: the first on a consistent-hash ring of
``RASA_URLS`` (:meth:`bot.config.Settings.rasa_replica_urls`).

* **The ring.** Each replica has :data:`VNODES` points on a 64-bit ring at
  ``blake2b("<url>#<i>")``; a conversation id hashes (blake2b, never Python's salted ``hash()``)
  to a point and belongs to the next replica point clockwise. Every gateway computes the same
  owner, and adding a replica moves only about 1/N of the conversations.
* **Failover.** When the owner cannot be connected to (the request never reached it, so nothing
  ran) the replica is marked down for :data:`COOLDOWN_SECONDS` and the call goes to the next
  replica in the conversation's ring order (:meth:`HashRing.replicas_for`). The trackers are in
  the shared Redis tracker store, so that replica carries the conversation on, slots and all.
  A replica in its cooldown is skipped without a connection; after it, one caller probes its
  ``/status`` before traffic returns to it. A timeout or a 5xx after the request was sent is not
  failed over (the turn may have run): it raises :class:`RasaUnavailable` as with one Rasa.
* **Two gateways during a failover** may briefly disagree (one still sees the replica down, the
  other up again) and send two turns of one conversation to two replicas; the project's lock
  store (:mod:`bot.runtime.lock_store`, tickets issued atomically) serializes them.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiohttp

from bot.web.rasa_client import BUSY, DOWN, UP, RasaClient, RasaUnavailable

VNODES = 128
COOLDOWN_SECONDS = 5.0
log = logging.getLogger("bot.web.rasa_ring")
T = TypeVar("T")


def stable_hash(key: str) -> int:
    """A 64-bit hash of `key` that is the same in every process (blake2b)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")


class HashRing:
    """A consistent-hash ring over replica names (their base URLs), `vnodes` points each."""

    def __init__(self, replicas: Sequence[str], vnodes: int = VNODES) -> None:
        if not replicas:
            raise ValueError("a hash ring needs at least one replica")
        if len(set(replicas)) != len(replicas):
            raise ValueError("the replicas of a hash ring must be distinct")
        self._replicas = tuple(replicas)
        points = sorted(
            (stable_hash(f"{replica}#{i}"), replica) for replica in replicas for i in range(vnodes)
        )
        self._hashes = [point for point, _ in points]
        self._owners = [replica for _, replica in points]

    @property
    def replicas(self) -> tuple[str, ...]:
        return self._replicas

    def _start(self, key: str) -> int:
        return bisect.bisect_right(self._hashes, stable_hash(key)) % len(self._hashes)

    def replica_for(self, key: str) -> str:
        """The replica that owns `key` (a conversation id)."""
        return self._owners[self._start(key)]

    def replicas_for(self, key: str) -> list[str]:
        """Every replica in the order `key` uses them: its owner first, then the failover order
        (the next distinct replicas clockwise on the ring)."""
        order: list[str] = []
        start = self._start(key)
        for step in range(len(self._owners)):
            replica = self._owners[(start + step) % len(self._owners)]
            if replica not in order:
                order.append(replica)
                if len(order) == len(self._replicas):
                    break
        return order


class ReplicaHealth:
    """Which replicas are down, each until its cooldown ends (then it is probed again)."""

    def __init__(
        self, cooldown: float = COOLDOWN_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._cooldown = cooldown
        self._clock = clock
        self._down_until: dict[str, float] = {}

    def mark_down(self, replica: str) -> None:
        self._down_until[replica] = self._clock() + self._cooldown

    def mark_up(self, replica: str) -> None:
        self._down_until.pop(replica, None)

    def cooling(self, replica: str) -> bool:
        """Down and within its cooldown: skip it without trying."""
        return self._clock() < self._down_until.get(replica, float("-inf"))

    def due_for_probe(self, replica: str) -> bool:
        """Down, and its cooldown is over: one look at its health before traffic returns."""
        return replica in self._down_until and not self.cooling(replica)

    def status(self, replica: str) -> str:
        return DOWN if replica in self._down_until else UP


class RasaRing:
    """Rasa as the gateway uses it: every call for a conversation goes to the conversation's
    replica, or to the next one on the ring while it is down. With one URL it is one Rasa."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        urls: Sequence[str],
        *,
        token: str | None = None,
        timeout: float = 30.0,
        cooldown: float = COOLDOWN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        urls = [url.rstrip("/") for url in urls]
        self.ring = HashRing(urls)
        self.health = ReplicaHealth(cooldown, clock)
        # with another replica to go to, one quick retry before failing over (one Rasa: three)
        retries = 3 if len(urls) == 1 else 1
        self._clients = {
            url: RasaClient(session, url, timeout=timeout, connect_retries=retries, token=token)
            for url in urls
        }
        self._session = session
        self._token = token or None

    @property
    def session(self) -> aiohttp.ClientSession:
        return self._session

    @property
    def token(self) -> str | None:
        return self._token

    def replica_for(self, conversation_id: str) -> str:
        """The base URL of the replica that owns the conversation (while it is up)."""
        return self.ring.replica_for(conversation_id)

    async def _usable(self, url: str) -> bool:
        if self.health.cooling(url):
            return False
        if self.health.due_for_probe(url):
            self.health.mark_down(url)  # one probe at a time: other callers skip it meanwhile
            if await self._clients[url].probe() == DOWN:
                return False
            self.health.mark_up(url)
            log.info("Rasa replica %s is back", self._name(url))
        return True

    def _name(self, url: str) -> str:
        return f"rasa-{self.ring.replicas.index(url) + 1}"

    async def _route(self, conversation_id: str, call: Callable[[RasaClient], Awaitable[T]]) -> T:
        """The call on the conversation's replica, or the next usable one on its ring. When every
        replica is in its cooldown, the last one on the ring is tried all the same: "no replica
        is reachable" only ever follows a connection that failed."""
        cause: RasaUnavailable | None = None
        order = self.ring.replicas_for(conversation_id)
        tried = 0
        for url in order:
            if tried == 0 and url == order[-1] and self.health.cooling(url):
                pass  # the last one, and none was tried: try it rather than fail untried
            elif not await self._usable(url):
                continue
            tried += 1
            try:
                result = await call(self._clients[url])
            except RasaUnavailable as error:
                if error.reached:  # it may have run there: never run it again elsewhere
                    raise
                self.health.mark_down(url)
                log.warning("Rasa replica %s is not reachable; failing over", self._name(url))
                cause = error
                continue
            return result
        raise RasaUnavailable("no Rasa replica is reachable", reached=False) from cause

    async def send(
        self,
        sender: str,
        message: str,
        *,
        timeout: float | None = None,
        client_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """One customer turn on the conversation's replica (see :meth:`RasaClient.send`)."""
        return await self._route(
            sender, lambda rasa: rasa.send(sender, message, timeout=timeout, client_id=client_id)
        )

    async def trigger_intent(
        self, sender: str, intent: str, entities: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        return await self._route(sender, lambda rasa: rasa.trigger_intent(sender, intent, entities))

    async def tracker(self, sender: str) -> dict[str, Any]:
        return await self._route(sender, lambda rasa: rasa.tracker(sender))

    async def run_action(self, sender: str, action: str) -> list[dict[str, Any]]:
        """Run one of the bot's actions in the conversation (``action_handback``,
        ``action_wait_check``: :mod:`bot.handoff.rasa`) and return its messages; the bot then
        listens, as after any turn. Each of the two requests fails over on its own: one that
        never reached a replica never ran."""
        messages = await self._route(sender, lambda rasa: rasa.execute(sender, action))
        await self._route(sender, lambda rasa: rasa.listen(sender))
        return messages

    async def statuses(self) -> list[dict[str, str]]:
        """Each replica's name (``rasa-<n>``, in `RASA_URLS` order) and whether its /status
        answers now (``up``), or it accepts connections but is too busy to answer in time (also
        ``up``, with ``"busy": true``), or not (``down``); the answers update the health the
        routing uses. A busy replica is never marked down here."""
        answers = await asyncio.gather(*(self._clients[u].probe() for u in self.ring.replicas))
        result: list[dict[str, Any]] = []
        for url, answer in zip(self.ring.replicas, answers, strict=True):
            if answer == DOWN:
                if not self.health.cooling(url):
                    self.health.mark_down(url)
                result.append({"name": self._name(url), "status": DOWN})
                continue
            self.health.mark_up(url)
            entry: dict[str, Any] = {"name": self._name(url), "status": UP}
            if answer == BUSY:
                entry["busy"] = True
            result.append(entry)
        return result
