"""Where Rasa keeps each conversation's state (events, slots): Redis by default, or SQL.

``endpoints.yml`` names :class:`ConfiguredTrackerStore`; Rasa builds it with
``ConfiguredTrackerStore(host=<url or None>, domain=..., event_broker=..., **other keys)``. It
reads the project's settings (:mod:`bot.config`) and wraps the store they call for:

* ``TRACKER_DB_URL`` set: Rasa's :class:`~rasa.core.tracker_store.SQLTrackerStore` on that
  SQLAlchemy URL (e.g. PostgreSQL);
* otherwise :class:`RedisTrackerStore` on the stack's Redis: ``REDIS_URL`` (the launcher's own
  Redis by default), or the Sentinel master when ``REDIS_SENTINELS`` is set.

:class:`RedisTrackerStore` is the project's own because Rasa 3.6's connects to one host only
(no Sentinel), accepts only an alphanumeric key prefix and blocks the event loop with a
synchronous client. Each conversation is one key, ``{ns}:rasa:tracker:<conversation id>``
(:data:`bot.keys.RASA_TRACKER`), holding the serialised tracker; every save sets it again with
an expiry of ``TRACKER_RETENTION_SECONDS``, so a conversation is forgotten that long after its
last turn. Several Rasa servers on the same store see the same conversations.

**A save reads the stored tracker once, and deserialises it only when it must.** Rasa's way of
saving (``TrackerStore.stream_events`` then a merge with the stored tracker, as Rasa's own Redis
store does) reads and deserialises the stored tracker twice on every save (once to find the new
events for the event broker, once to merge earlier sessions) and replays the tracker once more
(``travel_back_in_time``): three passes over every event of the conversation, each turn. When
the tracker being saved is the one :meth:`RedisTrackerStore.retrieve` returned (or the last one
this store saved) and the stored value is still the one it was read from (compared with the
value read now), both answers are known without deserialising: the new events are those after
the ones it was read with, and the merge returns the tracker itself when, as Rasa's merge
checks, the events it was read with are all no later than the last of them and the first new
event is later. The same holds for the latest session of several, which is what
:meth:`RedisTrackerStore.retrieve` returns for every conversation of this bot (Rasa 3.6 sets the
session's metadata slot before ``action_session_start``, and splits sessions at that action, so
the first "session" is that one slot): there Rasa's merge (quadratic in the events: each event's
``as_dict()`` compared with every stored one) gives the stored events followed by the new ones
when the new events are later than every stored event and than each other
(:func:`_merge_appends`), and the store writes exactly that from the events it read. Anything else
(another server saved meanwhile, events out of time order, a tracker this store did not read)
takes Rasa's way, so what is stored and streamed is the same either way
(``tests/runtime/test_tracker_store.py`` compares the two, in one session and in two).

**The JSON is read and written by ujson** (~2x faster than the standard library on a tracker; the
whole tracker is read and written each turn). What is stored parses to the same data as Rasa's
``json.dumps`` (only without spaces); a tracker ujson refuses (e.g. a number beyond 64 bits, a
lone surrogate) is written and read by the standard library as before.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis.asyncio
import ujson
from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import (
    AwaitableTrackerStore,
    SerializedTrackerAsText,
    SQLTrackerStore,
    TrackerDeserialisationException,
    TrackerStore,
)
from rasa.core.tracker_store import RedisTrackerStore as RasaRedisTrackerStore
from rasa.shared.core.conversation import Dialogue
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import (
    DialogueStateTracker,
    get_trackers_for_conversation_sessions,
)
from sqlalchemy.engine import make_url

from bot.config import Settings, get_settings
from bot.keys import RASA_TRACKER
from bot.redis_clients import RedisTarget

logger = logging.getLogger(__name__)

# Attribute of a tracker this store read or saved: what it was read from (see `_Loaded`).
LOADED_ATTRIBUTE = "_support_store_loaded"


@dataclass(frozen=True)
class _Loaded:
    """A tracker as this store read (or wrote) it: the stored JSON, the events it then had (the
    event objects themselves, compared by identity) and, for the latest session of several, the
    stored events of the sessions before it (``earlier``, read from the same JSON)."""

    stored: str | None
    events: tuple[Any, ...]
    earlier: tuple[Any, ...] = ()


def _remember(
    tracker: DialogueStateTracker, stored: str | None, earlier: tuple[Any, ...] = ()
) -> None:
    setattr(tracker, LOADED_ATTRIBUTE, _Loaded(stored, tuple(tracker.events), earlier))


def _earlier_events(tracker: DialogueStateTracker) -> tuple[Any, ...]:
    """The stored events of the sessions before ``tracker``'s, when this store read it."""
    loaded: _Loaded | None = getattr(tracker, LOADED_ATTRIBUTE, None)
    return loaded.earlier if loaded is not None else ()


def _known_new_events(tracker: DialogueStateTracker, stored: str | None) -> list[Any] | None:
    """The events ``tracker`` has beyond the stored value ``stored`` when that is known without
    deserialising it and Rasa's merge would give the stored events followed by them (``tracker``
    itself when it holds every session); else None."""
    loaded: _Loaded | None = getattr(tracker, LOADED_ATTRIBUTE, None)
    if loaded is None or loaded.stored != stored:
        return None
    count = len(loaded.events)
    events = tracker.events
    if len(events) < count or not all(
        a is b for a, b in zip(itertools.islice(events, count), loaded.events, strict=True)
    ):
        return None
    new = list(itertools.islice(events, count, None))
    if loaded.earlier:
        return new if _merge_appends(loaded, events, new) else None
    if count:  # RasaRedisTrackerStore._merge_trackers keeps `tracker` only in this case
        last = loaded.events[-1].timestamp
        if any(event.timestamp > last for event in loaded.events):
            return None
        if new and new[0].timestamp <= last:
            return None
    return new


def _merge_appends(loaded: _Loaded, events: Any, new: list[Any]) -> bool:
    """True when Rasa's ``_merge_trackers(prior, tracker)``, ``prior`` the stored tracker (the
    ``earlier`` sessions, then the latest one as read) and ``tracker`` the latest session with the
    ``new`` events, gives the stored events followed by the new ones.

    Its merge returns ``tracker`` alone (dropping the earlier sessions) only when ``tracker``
    travelled back to the last stored timestamp has exactly the stored events: never when the first
    stored event differs from ``tracker``'s first one (a first event later than that timestamp
    leaves no events at all). Otherwise it replays the stored events and appends each event of
    ``tracker`` whose ``as_dict()`` differs from every event so far: the latest session's events
    are the stored ones (the same JSON), so none of them; a new event whose timestamp (part of
    every event's ``as_dict()``) is later than every stored one and than no other new event is
    appended.
    """
    if getattr(events, "maxlen", None) is not None:  # a bounded history: Rasa's way
        return False
    if events and loaded.earlier[0] == events[0]:
        return False
    latest = max(event.timestamp for event in itertools.chain(loaded.earlier, loaded.events))
    times = [event.timestamp for event in new]
    return all(time > latest for time in times) and len(set(times)) == len(times)


class RedisTrackerStore(TrackerStore, SerializedTrackerAsText):
    """Trackers as JSON strings in Redis, one key per conversation, expiring after
    ``retention_seconds`` without a save. Uses redis-py's asyncio client (URL or Sentinel)."""

    def __init__(
        self,
        domain: Domain | None,
        target: RedisTarget,
        *,
        namespace: str,
        retention_seconds: int | None,
        event_broker: EventBroker | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(domain, event_broker, **kwargs)
        self.target = target
        self.namespace = namespace
        self.record_exp = retention_seconds
        self._client: redis.asyncio.Redis | None = None

    @property
    def red(self) -> redis.asyncio.Redis:
        """The client, made on first use (inside the event loop that Rasa serves on)."""
        if self._client is None:
            self._client = self.target.async_client(decode_responses=True)
        return self._client

    def key(self, sender_id: str) -> str:
        return RASA_TRACKER.format(ns=self.namespace, conversation=sender_id)

    @staticmethod
    def serialise_tracker(tracker: DialogueStateTracker, earlier: tuple[Any, ...] = ()) -> str:
        """Rasa's serialisation (the tracker's dialogue as JSON, after the ``earlier`` events),
        written by ujson."""
        if earlier:
            data = Dialogue(tracker.sender_id, [*earlier, *tracker.events]).as_dict()
        else:
            data = tracker.as_dialogue().as_dict()
        try:
            return ujson.dumps(data, ensure_ascii=True, escape_forward_slashes=False)
        except (TypeError, ValueError, OverflowError):
            return json.dumps(data)

    def deserialise_tracker(
        self, sender_id: str, serialised_tracker: str | bytes
    ) -> DialogueStateTracker | None:
        """Rasa's deserialisation (a tracker replayed from the stored dialogue), read by ujson."""
        try:
            data = ujson.loads(serialised_tracker)
        except (ValueError, OverflowError):
            try:
                data = json.loads(serialised_tracker)
            except UnicodeDecodeError as error:  # as Rasa's: not JSON text (an old pickle)
                raise TrackerDeserialisationException(
                    "Tracker cannot be deserialised. Trackers must be serialised as json. "
                    "Support for deserialising pickled trackers has been removed."
                ) from error
        tracker = self.init_tracker(sender_id)
        tracker.recreate_from_dialogue(Dialogue.from_parameters(data))
        return tracker

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Store the tracker (merged onto earlier sessions' events) and restart its expiry."""
        key = self.key(tracker.sender_id)
        stored = await self.red.get(key)
        new_events = _known_new_events(tracker, stored)
        earlier: tuple[Any, ...] = ()
        if new_events is not None:  # the shortcut (module docstring)
            if self.event_broker is not None:
                await self._stream_new_events(self.event_broker, new_events, tracker.sender_id)
            merged = tracker
            earlier = _earlier_events(tracker)
        else:  # Rasa's way
            await self.stream_events(tracker)
            stored = await self.red.get(key)
            merged = tracker
            if stored is not None:
                prior = self.deserialise_tracker(tracker.sender_id, stored)
                merged = RasaRedisTrackerStore._merge_trackers(prior, tracker)
        serialised = self.serialise_tracker(merged, earlier)
        await self.red.set(key, serialised, ex=self.record_exp)
        if merged is tracker:
            _remember(tracker, serialised, earlier)

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        """The conversation's latest session (None for a new conversation)."""
        stored = await self.red.get(self.key(sender_id))
        if stored is None:
            return None
        tracker = self.deserialise_tracker(sender_id, stored)
        sessions = get_trackers_for_conversation_sessions(tracker)
        if len(sessions) > 1:
            latest = sessions[-1]
            earlier = tuple(
                itertools.islice(tracker.events, len(tracker.events) - len(latest.events))
            )
            tail = itertools.islice(tracker.events, len(earlier), None)
            if earlier and all(a is b for a, b in zip(tail, latest.events, strict=True)):
                _remember(latest, stored, earlier)
            return latest
        _remember(tracker, stored)
        return tracker

    async def retrieve_full_tracker(self, sender_id: str) -> DialogueStateTracker | None:
        """Every session of the conversation (None for a new conversation)."""
        stored = await self.red.get(self.key(sender_id))
        if stored is None:
            return None
        return self.deserialise_tracker(sender_id, stored)

    async def keys(self) -> Iterable[str]:
        """The ids of the stored conversations."""
        pattern = self.key("*")
        ids = []
        async for key in self.red.scan_iter(match=pattern, count=500):
            parts = RASA_TRACKER.parse(key, ns=self.namespace)
            if parts is not None:
                ids.append(parts["conversation"])
        return ids


def sql_tracker_store(
    url: str, domain: Domain | None, event_broker: EventBroker | None
) -> SQLTrackerStore:
    """Rasa's SQL tracker store on a SQLAlchemy URL (Rasa's own takes the URL's parts)."""
    parsed = make_url(url)
    return SQLTrackerStore(
        domain=domain,
        dialect=parsed.drivername,
        host=parsed.host,
        port=parsed.port,
        db=parsed.database or "rasa.db",
        username=parsed.username,
        password=parsed.password,
        event_broker=event_broker,
        query=dict(parsed.query) or None,
    )


def configured_store(
    domain: Domain | None,
    event_broker: EventBroker | None = None,
    settings: Settings | None = None,
    redis_url: str | None = None,
) -> TrackerStore:
    """The store the settings call for (see the module's docstring)."""
    settings = settings or get_settings()
    if settings.tracker_db_url:
        return sql_tracker_store(settings.tracker_db_url, domain, event_broker)
    target = RedisTarget.from_settings(settings, url=redis_url)
    logger.info("Conversation state in Redis: %s", target.describe())
    return RedisTrackerStore(
        domain,
        target,
        namespace=settings.queue_namespace,
        retention_seconds=settings.tracker_retention_seconds,
        event_broker=event_broker,
    )


class ConfiguredTrackerStore(AwaitableTrackerStore):
    """What ``endpoints.yml`` names: the tracker store of :func:`configured_store`.

    ``url`` in endpoints.yml (optional) overrides ``REDIS_URL`` for the Redis store.
    """

    def __init__(
        self,
        domain: Domain | None = None,
        host: str | None = None,
        event_broker: EventBroker | None = None,
        **_kwargs: Any,
    ) -> None:
        super().__init__(configured_store(domain, event_broker, redis_url=host or None))

    @property
    def store(self) -> TrackerStore:
        """The wrapped store."""
        return self._tracker_store
