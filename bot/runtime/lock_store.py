"""A Redis lock store for Rasa whose every change is one atomic step.

Rasa serialises the turns of one conversation with a ticket lock: each incoming message draws
a ticket, waits until its number is the lowest live one, runs, and gives the ticket back. Rasa
open source's ``RedisLockStore`` keeps the lock as one JSON string and changes it by reading it,
changing it in Python and writing it back (``issue_ticket``, ``finish_serving``,
``update_lock``, ``cleanup``). Two Rasa servers (or two coroutines of one) drawing a ticket for
the same conversation at the same moment can both read the same lock and both get the same
number, so two turns of one conversation run at once (rasa issue #9213; the fix, PR #11256, was
reverted in #11428).

:class:`AtomicRedisLockStore` keeps the lock as a hash, ``{ns}:rasa:lock:<conversation>``
(:data:`bot.keys.RASA_LOCK`): field ``seq`` is the last ticket number, ``t:<number>`` the
expiry (epoch seconds) of each live ticket. Drawing a ticket is one ``HINCRBY`` inside one Lua
script, and so are giving it back and dropping expired tickets, so no two callers ever get the
same number. Rasa's waiting loop (:meth:`~rasa.core.lock_store.LockStore._acquire_lock`) is
unchanged: it reads the lock with :meth:`get_lock`.

**A Rasa that dies holding a ticket.** A ticket also records its owner (field ``o:<number>``),
the lock store of one Rasa process, which keeps a heartbeat key alive while the process lives
(:data:`bot.keys.RASA_LOCK_OWNER`, renewed every ``LOCK_OWNER_TTL_SECONDS / 4`` by a daemon
thread, expiring ``LOCK_OWNER_TTL_SECONDS`` after the last renewal). Rasa's waiting loop calls
:meth:`update_lock` about once a second; it drops expired tickets and also tickets whose owner's
heartbeat is gone. Without this, the next turn of every conversation a SIGKILLed Rasa was
serving waited behind its dead ticket for the whole ticket lifetime (Rasa's 60 s), longer than
the gateway waits for a turn, so the customer was told the assistant is reconnecting and the
turn ran unseen after that (``bench.faults``, 100 conversations: 18 such conversations). Now
they wait at most the heartbeat's TTL. A ticket without an owner field is dropped only when it
expires.

Registered in ``endpoints.yml`` as ``lock_store: type: bot.runtime.lock_store.AtomicRedisLockStore``;
it reads its Redis (``REDIS_URL`` or Sentinel) from the settings; ``url`` there overrides
``REDIS_URL``. Rasa's lock store interface is synchronous, so this store has redis-py's
blocking client for it, as Rasa's own does.

**Turns take the lock without blocking Rasa's event loop.** Rasa takes the lock through one
method, the async context manager :meth:`~rasa.core.lock_store.LockStore.lock` (every turn, and
every HTTP API call that changes a conversation), which calls the blocking methods: three Redis
round trips per turn during which Rasa's event loop, which serves every other conversation, waits
(~10 % of Rasa's samples under load, docs/performance.md). :meth:`AtomicRedisLockStore.lock`
is Rasa's ``lock`` and ``_acquire_lock`` step for step (issue a ticket; until it is served, read
the lock, sleep ``wait_time_in_seconds``, drop expired and dead tickets; raise ``LockError`` when
the lock is gone; give the ticket back however the block ends) with the same Lua scripts and
arguments sent through redis-py's asyncio client. ``tests/runtime/test_lock_store.py`` fails
when Rasa changes the methods this mirrors (their source is hashed) and runs the same checks on
both.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import redis
import redis.asyncio
from rasa.core.lock import Ticket, TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, LockStore
from rasa.utils.endpoints import EndpointConfig

from bot.config import Settings, get_settings
from bot.keys import RASA_LOCK, RASA_LOCK_OWNER
from bot.redis_clients import RedisTarget

logger = logging.getLogger(__name__)

# sha256 of the sources of Rasa's LockStore.lock and LockStore._acquire_lock (joined by a
# newline) in rasa 3.6.21: what AtomicRedisLockStore.lock does with the asyncio client.
RASA_LOCK_SOURCE_SHA256 = "ccfa408f8ca37a1905dd2205c88ebd4daadc638e1c40368145ee152afb30eb59"


def rasa_lock_source_sha256() -> str:
    """sha256 of the sources of Rasa's ``LockStore.lock`` and ``_acquire_lock`` as installed."""
    sources = [inspect.getsource(LockStore.lock), inspect.getsource(LockStore._acquire_lock)]
    return hashlib.sha256("\n".join(sources).encode("utf-8")).hexdigest()


def _ticket_lock(conversation_id: str, fields: dict[str, str]) -> TicketLock | None:
    """The lock from its hash's fields (None: nobody holds or waits for it)."""
    tickets = sorted(
        (
            Ticket(int(name[2:]), float(expires))
            for name, expires in fields.items()
            if name.startswith("t:")
        ),
        key=lambda ticket: ticket.number,
    )
    if not tickets:  # no lock, or only its counter: nobody holds or waits for it
        return None
    return TicketLock(conversation_id, deque(tickets))


# Shared by the scripts below: drops the tickets of KEYS[1] that expired before `now`, or whose
# owner's heartbeat key (`owner_prefix` .. owner) is gone; returns how many it dropped.
DROP_DEAD = """
local function drop_dead(now, owner_prefix)
  local fields = redis.call('HGETALL', KEYS[1])
  local owners = {}
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 2) == 'o:' then
      owners[string.sub(fields[i], 3)] = fields[i + 1]
    end
  end
  local dropped = 0
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 2) == 't:' then
      local number = string.sub(fields[i], 3)
      local owner = owners[number]
      local dead = owner ~= nil and redis.call('EXISTS', owner_prefix .. owner) == 0
      if tonumber(fields[i + 1]) < now or dead then
        redis.call('HDEL', KEYS[1], fields[i], 'o:' .. number)
        dropped = dropped + 1
      end
    end
  end
  return dropped
end
"""

# KEYS[1] lock hash, KEYS[2] the caller's heartbeat key; ARGV now, lifetime (s), owner, owner
# key prefix, heartbeat TTL (ms). Renews the caller's heartbeat, drops dead tickets, draws the
# next number with its owner, keeps the hash at least as long as the new ticket lives (so `seq`
# outlives every live ticket).
ISSUE_TICKET = (
    DROP_DEAD
    + """
local now = tonumber(ARGV[1])
local lifetime = tonumber(ARGV[2])
redis.call('SET', KEYS[2], '1', 'PX', tonumber(ARGV[5]))
drop_dead(now, ARGV[4])
local number = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 't:' .. number, string.format('%.6f', now + lifetime), 'o:' .. number, ARGV[3])
local ttl = math.max(math.ceil(lifetime * 1000), 0) + 1000
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return number
"""
)

# KEYS[1] lock hash; ARGV ticket number. Gives the ticket back; deletes the lock when no live
# ticket is left (Rasa's `cleanup`, which otherwise reads, decides and deletes in three steps).
FINISH_AND_CLEAN = """
redis.call('HDEL', KEYS[1], 't:' .. ARGV[1], 'o:' .. ARGV[1])
local fields = redis.call('HKEYS', KEYS[1])
for _, field in ipairs(fields) do
  if string.sub(field, 1, 2) == 't:' then
    return 0
  end
end
redis.call('DEL', KEYS[1])
return 1
"""

# KEYS[1] lock hash; ARGV now, owner key prefix. Drops expired tickets and those of dead owners
# (Rasa's `update_lock`, which its waiting loop calls between two looks at the lock).
DROP_EXPIRED = DROP_DEAD + "return drop_dead(tonumber(ARGV[1]), ARGV[2])"

# KEYS[1] lock hash; ARGV lifetime (s), then number, expiry pairs. Replaces the tickets with the
# given ones, keeps the owners of those it keeps, and never lowers `seq` (only for `save_lock`,
# which Rasa's loop no longer calls).
REPLACE_TICKETS = """
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local fields = redis.call('HGETALL', KEYS[1])
local owners = {}
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 2) == 'o:' then owners[string.sub(fields[i], 3)] = fields[i + 1] end
end
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], 't:' .. ARGV[i], ARGV[i + 1])
  if owners[ARGV[i]] then redis.call('HSET', KEYS[1], 'o:' .. ARGV[i], owners[ARGV[i]]) end
  if tonumber(ARGV[i]) > seq then seq = tonumber(ARGV[i]) end
end
redis.call('HSET', KEYS[1], 'seq', seq)
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
return seq
"""


class AtomicRedisLockStore(LockStore):
    """Rasa's ticket lock in Redis, each change one Lua script (see the module docstring)."""

    def __init__(
        self,
        endpoint_config: EndpointConfig | None = None,
        *,
        client: redis.Redis | None = None,
        async_client: Callable[[], redis.asyncio.Redis] | None = None,
        namespace: str | None = None,
        settings: Settings | None = None,
        owner_ttl: float | None = None,
    ) -> None:
        """``client`` and ``async_client`` (a factory: the asyncio client is made inside the
        event loop that first takes a lock) default to the configured Redis. Given a ``client``
        without an ``async_client``, :meth:`lock` is Rasa's own, on the blocking client."""
        settings = settings or get_settings()
        if client is None:
            url = endpoint_config.url if endpoint_config is not None else None
            target = RedisTarget.from_settings(settings, url=url or None)
            logger.info("Rasa's conversation locks in Redis: %s", target.describe())
            client = target.sync_client(decode_responses=True)
            if async_client is None:
                async_client = lambda: target.async_client(decode_responses=True)  # noqa: E731
        self._make_async_client = async_client
        self._async: tuple[redis.asyncio.Redis, Any, Any, Any] | None = None
        self.red = client
        self.namespace = namespace or settings.queue_namespace
        self._issue = client.register_script(ISSUE_TICKET)
        self._finish_and_clean = client.register_script(FINISH_AND_CLEAN)
        self._drop_expired = client.register_script(DROP_EXPIRED)
        self._replace = client.register_script(REPLACE_TICKETS)
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._owner_ttl = owner_ttl if owner_ttl is not None else settings.lock_owner_ttl_seconds
        self._owner_prefix = RASA_LOCK_OWNER.format(ns=self.namespace, owner="")
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(
            target=self._beat, name="rasa-lock-owner-heartbeat", daemon=True
        )
        self._renew()
        self._heartbeat.start()
        super().__init__()

    @property
    def owner_key(self) -> str:
        """This process's heartbeat key: while it exists, its tickets are live."""
        return self._owner_prefix + self.owner

    def _renew(self) -> None:
        self.red.set(self.owner_key, "1", px=int(self._owner_ttl * 1000))

    def _beat(self) -> None:
        """Renew the heartbeat four times per TTL until :meth:`close` (a daemon thread: it dies
        with the process, and so, one TTL later, do the process's tickets)."""
        while not self._stop.wait(self._owner_ttl / 4):
            try:
                self._renew()
            except redis.RedisError as error:  # Redis away: retried at the next beat
                logger.warning("could not renew the lock owner's heartbeat: %s", error)

    def close(self) -> None:
        """Stop the heartbeat and delete it: this store's tickets count as dead from now on."""
        self._stop.set()
        self._heartbeat.join(timeout=5)
        try:
            self.red.delete(self.owner_key)
        except redis.RedisError:
            pass

    def key(self, conversation_id: str) -> str:
        return RASA_LOCK.format(ns=self.namespace, conversation=conversation_id)

    def _issue_arguments(self, conversation_id: str, lock_lifetime: float) -> dict[str, list[Any]]:
        """The keys and arguments of the ISSUE_TICKET script."""
        return {
            "keys": [self.key(conversation_id), self.owner_key],
            "args": [
                time.time(),
                lock_lifetime,
                self.owner,
                self._owner_prefix,
                int(self._owner_ttl * 1000),
            ],
        }

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        """Draw the next ticket number for the conversation, atomically."""
        try:
            return int(self._issue(**self._issue_arguments(conversation_id, lock_lifetime)))
        except redis.RedisError as error:
            raise LockError(f"Error while acquiring lock. Error:\n{error}") from error

    def get_lock(self, conversation_id: str) -> TicketLock | None:
        return _ticket_lock(conversation_id, self.red.hgetall(self.key(conversation_id)))

    def delete_lock(self, conversation_id: str) -> None:
        self._log_deletion(conversation_id, bool(self.red.delete(self.key(conversation_id))))

    def save_lock(self, lock: TicketLock) -> None:
        pairs = [str(value) for t in lock.tickets for value in (t.number, repr(t.expires))]
        self._replace(keys=[self.key(lock.conversation_id)], args=[LOCK_LIFETIME, *pairs])

    def update_lock(self, conversation_id: str) -> None:
        self._drop_expired(keys=[self.key(conversation_id)], args=[time.time(), self._owner_prefix])

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        self.red.hdel(self.key(conversation_id), f"t:{ticket_number}", f"o:{ticket_number}")

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        """Give the ticket back and delete the lock if no live ticket is left, in one step."""
        deleted = self._finish_and_clean(keys=[self.key(conversation_id)], args=[ticket_number])
        self._log_deletion(conversation_id, bool(deleted))

    # -- the lock Rasa takes for each turn, without blocking its event loop --------------------

    def _asyncio(self) -> tuple[redis.asyncio.Redis, Any, Any, Any]:
        """The asyncio client and its scripts (issue, finish and clean, drop expired)."""
        if self._async is None:
            assert self._make_async_client is not None
            client = self._make_async_client()
            self._async = (
                client,
                client.register_script(ISSUE_TICKET),
                client.register_script(FINISH_AND_CLEAN),
                client.register_script(DROP_EXPIRED),
            )
        return self._async

    @asynccontextmanager
    async def lock(
        self,
        conversation_id: str,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: float = 1,
    ) -> AsyncIterator[TicketLock]:
        """Rasa's ``LockStore.lock`` (see the module docstring), on the asyncio client."""
        if self._make_async_client is None:
            async with super().lock(conversation_id, lock_lifetime, wait_time_in_seconds) as lock:
                yield lock
            return
        client, issue, finish_and_clean, drop_expired = self._asyncio()
        key = self.key(conversation_id)
        try:
            ticket = int(await issue(**self._issue_arguments(conversation_id, lock_lifetime)))
        except redis.RedisError as error:
            raise LockError(f"Error while acquiring lock. Error:\n{error}") from error
        try:
            while True:
                lock = _ticket_lock(conversation_id, await client.hgetall(key))
                if not lock:
                    break
                if not lock.is_locked(ticket):
                    yield lock
                    return
                logger.debug(
                    "Failed to acquire lock for conversation ID '%s' because %s other item(s) "
                    "for this conversation ID have to be finished processing first. Retrying "
                    "in %s seconds ...",
                    conversation_id,
                    ticket - (lock.now_serving or 0),
                    wait_time_in_seconds,
                )
                await asyncio.sleep(wait_time_in_seconds)
                await drop_expired(keys=[key], args=[time.time(), self._owner_prefix])
            raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}'.")
        finally:
            deleted = await finish_and_clean(keys=[key], args=[ticket])
            self._log_deletion(conversation_id, bool(deleted))
