"""A tracker store error fails the turn; it never forks the conversation into Rasa's memory.

Rasa 3.6's ``Agent`` wraps every tracker store in ``FailSafeTrackerStore``
(``Agent._create_tracker_store``). When the store fails, that wrapper:

* on ``retrieve``, logs and returns ``None``: Rasa starts the conversation afresh, with empty
  slots, and the end of the turn saves that fresh tracker over the stored one once the store
  is back, so the conversation's failed-turn count, survey stage and history are gone;
* on ``save``, logs and saves into an ``InMemoryTrackerStore`` that only this replica reads.

With Redis restarting under load (``bench.faults``, Redis SIGKILLed, AOF, back in about a
second) that lost the slots of 14 of 100 conversations. :func:`apply` replaces
``Agent._create_tracker_store`` so that the store is wrapped in :class:`StrictTrackerStore`
instead: each call is retried on a connection error for up to :data:`RETRY_SECONDS` (longer than
a Redis restart or a Sentinel failover, measured at under 4 s), and then the error is raised.
A turn that cannot read or write its conversation then fails (Rasa's REST channel answers it
with nothing and the gateway tells the customer the assistant is reconnecting, storing the
message); it never runs on a blank conversation.

Guarded (:mod:`bot.runtime.guarded_patch`): applied by ``python -m bot.runtime.rasa_server``
only when the source of Rasa's method hashes to :data:`RASA_SOURCE_SHA256`;
``tests/runtime/test_strict_tracker_store.py`` fails when a Rasa upgrade changes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import redis.exceptions
from rasa.core.agent import Agent
from rasa.core.tracker_store import InMemoryTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy.exc import OperationalError

from bot.runtime.guarded_patch import GuardedPatch

logger = logging.getLogger(__name__)

# sha256 of `inspect.getsource(Agent._create_tracker_store)` in rasa 3.6.21.
RASA_SOURCE_SHA256 = "97499b594b45581b2c6d8ff7adb9083af24eba85654995a40350de65633ca574"
RETRY_SECONDS = 8.0
# what a store raises while its server is restarting, failing over or unreachable
TRANSIENT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OperationalError)

ORIGINAL = Agent._create_tracker_store  # a staticmethod: a plain function here
T = TypeVar("T")


class StrictTrackerStore(TrackerStore):
    """Rasa's tracker store, retried on connection errors, then failing loudly."""

    def __init__(self, tracker_store: TrackerStore, retry_seconds: float = RETRY_SECONDS) -> None:
        self._tracker_store = tracker_store
        self._retry_seconds = retry_seconds
        super().__init__(tracker_store.domain, tracker_store.event_broker)

    @property
    def domain(self) -> Domain:
        return self._tracker_store.domain

    @domain.setter
    def domain(self, domain: Domain) -> None:
        self._tracker_store.domain = domain

    @property
    def store(self) -> TrackerStore:
        """The wrapped store."""
        return self._tracker_store

    async def _retried(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        deadline = time.monotonic() + self._retry_seconds
        pause = 0.1
        while True:
            try:
                return await call()
            except TRANSIENT as error:
                if time.monotonic() + pause > deadline:
                    logger.error("tracker store: %s failed, giving up the turn: %s", what, error)
                    raise
                logger.warning("tracker store: %s failed, retrying: %s", what, error)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        return await self._retried("retrieve", lambda: self._tracker_store.retrieve(sender_id))

    async def retrieve_full_tracker(self, sender_id: str) -> DialogueStateTracker | None:
        return await self._retried(
            "retrieve", lambda: self._tracker_store.retrieve_full_tracker(sender_id)
        )

    async def save(self, tracker: DialogueStateTracker) -> None:
        await self._retried("save", lambda: self._tracker_store.save(tracker))

    async def keys(self) -> Iterable[str]:
        return await self._retried("keys", self._tracker_store.keys)


def create_tracker_store(store: TrackerStore | None, domain: Domain) -> TrackerStore:
    """Rasa's ``Agent._create_tracker_store`` with :class:`StrictTrackerStore` as the wrapper."""
    if store is not None:
        store.domain = domain
        tracker_store = store
    else:
        tracker_store = InMemoryTrackerStore(domain)
    return StrictTrackerStore(tracker_store)


PATCH = GuardedPatch(
    owner=Agent,
    attribute="_create_tracker_store",
    replacement=create_tracker_store,
    guarded=(ORIGINAL,),
    what="Rasa's Agent._create_tracker_store",
    module=__name__,
)


def rasa_source_sha256() -> str:
    """sha256 of the source of Rasa's ``Agent._create_tracker_store`` as installed."""
    return PATCH.rasa_source_sha256()


def apply() -> bool:
    """Replace Rasa's method by :func:`create_tracker_store`; True when it was replaced (or
    already was). Leaves Rasa's method in place, and warns, when its source is not the expected
    one."""
    return PATCH.apply(RASA_SOURCE_SHA256)
