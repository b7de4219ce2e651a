"""Conversation state in a shared store (endpoints.yml: bot.runtime.tracker_store).

On real processes: a Rasa server (trained model) and the action server keep a conversation's
slots in Redis, so after ``kill -9`` of Rasa a restarted one carries on (the second unclear
message is the second failed turn, and the bot offers a person), and a second Rasa process sees
the same slots. The tracker key lives under the namespace's own prefix with a retention TTL.
PostgreSQL (Rasa's SQL tracker store, ``TRACKER_DB_URL``) is the documented alternative.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import (
    SerializedTrackerAsText,
    TrackerDeserialisationException,
    TrackerStore,
    create_tracker_store,
)
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker, EventVerbosity
from rasa.utils.endpoints import read_endpoint_config

from bot import keys
from bot.config import PROJECT_ROOT, Settings, get_settings
from bot.redis_clients import RedisTarget
from bot.runtime import services
from bot.runtime import tracker_store as tracker_store_module
from bot.runtime.internal_secrets import InternalSecrets
from bot.runtime.ports import free_port
from bot.runtime.redis_server import RedisServer
from bot.runtime.tracker_store import (
    ConfiguredTrackerStore,
    RedisTrackerStore,
    configured_store,
)
from tests.analytics.test_postgres_broker import postgres  # noqa: F401 (a real PostgreSQL)

LOGS = PROJECT_ROOT / "test-artifacts" / "logs" / "tracker"
NAMESPACE = "trk"
RETENTION = 3600
UNCLEAR = ("blorp", "flarp zing")


SECRETS = InternalSecrets.generate()  # the services' tokens for this run


def _rasa(port: int, model: Path, action_url: str, env: dict[str, str], name: str):
    service = services.rasa_server(port, model, action_url, LOGS, env, secrets=SECRETS)
    service.name, service.log_path = name, LOGS / f"{name}.log"
    return service


def _say(rasa_url: str, sender: str, text: str) -> list[dict]:
    response = requests.post(
        f"{rasa_url}/webhooks/rest/webhook", json={"sender": sender, "message": text}, timeout=120
    )
    response.raise_for_status()
    return response.json()


def _slots(rasa_url: str, sender: str) -> dict:
    response = requests.get(
        f"{rasa_url}/conversations/{sender}/tracker",
        params={"token": SECRETS.rasa_auth_token},  # Rasa's HTTP API wants its token
        timeout=60,
    )
    response.raise_for_status()
    return response.json()["slots"]


@pytest.fixture(scope="module")
def state_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(data_dir=tmp_path_factory.mktemp("tracker-redis")) as server:
        yield server


@pytest.mark.model
def test_a_restarted_rasa_and_a_second_rasa_carry_on_the_same_conversation(
    state_redis: RedisServer, tmp_path: Path
) -> None:
    from bot.runtime.training import ensure_model

    model = ensure_model(quiet=True)
    env = {
        "REDIS_URL": state_redis.url,
        "SUPPORT_QUEUE_NAMESPACE": NAMESPACE,
        "TRACKER_RETENTION_SECONDS": str(RETENTION),
        "EVENTS_DB_URL": f"sqlite:///{tmp_path / 'events.db'}",
    }
    actions_port, rasa_port, second_port = free_port(), free_port(), free_port()
    action_url = f"http://127.0.0.1:{actions_port}/webhook"
    actions = services.action_server(actions_port, LOGS, env, secrets=SECRETS)
    first = _rasa(rasa_port, model, action_url, env, "rasa-first")
    sender = f"trk-{uuid.uuid4().hex[:10]}"
    client = redis.Redis.from_url(state_redis.url, decode_responses=True)
    key = keys.RASA_TRACKER.format(ns=NAMESPACE, conversation=sender)
    try:
        with services.running([actions, first]):
            rasa_url = f"http://127.0.0.1:{rasa_port}"
            _say(rasa_url, sender, UNCLEAR[0])
            state = _slots(rasa_url, sender)["escalation_state"]
            assert state["failed_turns"] == 1 and state["offers"] == 0

            # the tracker is in Redis under the namespace's prefix, with the retention as TTL
            assert client.exists(key) == 1
            assert 0 < client.ttl(key) <= RETENTION
            assert not [k for k in client.scan_iter("tracker:*")]  # not Rasa's default prefix

            os.killpg(first.process.pid, signal.SIGKILL)  # a crash: nothing is flushed
            first.process.wait()

            restarted = _rasa(rasa_port, model, action_url, env, "rasa-restarted")
            second = _rasa(second_port, model, action_url, env, "rasa-second")
            with services.running([restarted, second]):
                assert _slots(rasa_url, sender)["escalation_state"]["failed_turns"] == 1
                replies = _say(rasa_url, sender, UNCLEAR[1])
                state = _slots(rasa_url, sender)["escalation_state"]
                # the second failed turn of the conversation: the bot offers a person
                assert state["failed_turns"] == 2 and state["failed_total"] == 2, state
                payloads = [b.get("payload", "") for r in replies for b in r.get("buttons", [])]
                assert "/request_human" in payloads, replies

                # a second Rasa process sees the same conversation, slots and all
                other = _slots(f"http://127.0.0.1:{second_port}", sender)
                assert other["escalation_state"] == state
                assert 0 < client.ttl(key) <= RETENTION
    finally:
        first.stop()
        client.close()


@pytest.fixture
def domain() -> Domain:
    return Domain.from_dict(
        {"slots": {"topic": {"type": "text", "mappings": [{"type": "custom"}]}}}
    )


def _conversation(sender: str, domain: Domain) -> DialogueStateTracker:
    tracker = DialogueStateTracker(sender, domain.slots)
    tracker.update(UserUttered("where is my card"))
    tracker.update(SlotSet("topic", "card_arrival"))
    return tracker


def test_endpoints_yml_gives_rasa_the_project_store_on_the_configured_redis(
    state_redis: RedisServer, domain: Domain, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", state_redis.url)
    monkeypatch.setenv("SUPPORT_QUEUE_NAMESPACE", NAMESPACE)
    for name in ("ACTION_SERVER_URL", "ACTION_SERVER_TOKEN", "EVENTS_DB_URL"):  # set for Rasa
        monkeypatch.setenv(name, "unused")
    monkeypatch.delenv("TRACKER_DB_URL", raising=False)
    monkeypatch.delenv("REDIS_SENTINELS", raising=False)
    get_settings.cache_clear()
    try:
        config = read_endpoint_config(str(PROJECT_ROOT / "endpoints.yml"), "tracker_store")
        store = create_tracker_store(config, domain)
    finally:
        get_settings.cache_clear()
    assert isinstance(store, ConfiguredTrackerStore)  # not Rasa's silent in-memory fallback
    assert isinstance(store.store, RedisTrackerStore)
    assert store.store.target.url == state_redis.url and store.store.namespace == NAMESPACE


async def test_trackers_round_trip_through_redis_and_are_listed(
    state_redis: RedisServer, domain: Domain
) -> None:
    settings = Settings(
        redis_url=state_redis.url, queue_namespace="rt", tracker_retention_seconds=120
    )
    store = configured_store(domain, settings=settings)
    await store.save(_conversation("rt-1", domain))
    again = configured_store(domain, settings=settings)  # another process, same store
    tracker = await again.retrieve("rt-1")
    assert tracker is not None and tracker.get_slot("topic") == "card_arrival"
    assert "rt-1" in await again.keys()
    assert await again.retrieve("rt-unknown") is None
    client = redis.Redis.from_url(state_redis.url)
    assert 0 < client.ttl(keys.RASA_TRACKER.format(ns="rt", conversation="rt-1")) <= 120
    client.close()


async def test_postgresql_keeps_the_conversation_state_when_configured(
    postgres: str,  # noqa: F811
    domain: Domain,
) -> None:
    settings = Settings(tracker_db_url=postgres, redis_url=None)
    store = configured_store(domain, settings=settings)
    assert type(store).__name__ == "SQLTrackerStore"
    await store.save(_conversation("pg-1", domain))
    again = configured_store(domain, settings=settings)
    tracker = await again.retrieve("pg-1")
    assert tracker is not None and tracker.get_slot("topic") == "card_arrival"


class RecordingBroker(EventBroker):
    """An event broker that keeps what it is given."""

    def __init__(self) -> None:
        self.published: list[dict] = []

    def publish(self, event: dict) -> None:
        self.published.append(event)


def _session_start(clock: Iterator[int]) -> list:
    """A conversation's first events as Rasa 3.6 logs them: the session's metadata slot, then the
    session start. Rasa splits sessions at ``action_session_start``, so every conversation of the
    bot holds two sessions, the first of them this one slot."""
    return [
        SlotSet("session_started_metadata", {"channel": "rest"}, timestamp=next(clock)),
        ActionExecuted("action_session_start", timestamp=next(clock)),
        SessionStarted(timestamp=next(clock)),
        SlotSet("session_started_metadata", {"channel": "rest"}, timestamp=next(clock)),
        ActionExecuted("action_listen", timestamp=next(clock)),
    ]


async def _run_saves(
    redis_url: str,
    namespace: str,
    domain: Domain,
    shortcut: bool,
    concurrent: bool,
    sessions: bool = False,
) -> tuple[list[dict], list[dict], int]:
    """A conversation saved over three turns, through one store (and, with ``concurrent``, a
    second server's store saving in between; with ``sessions``, starting as Rasa starts a
    conversation, in two sessions): the stored events, the events streamed to the broker, and
    how many saves took the shortcut."""
    settings = Settings(redis_url=redis_url, queue_namespace=namespace)
    broker, other_broker = RecordingBroker(), RecordingBroker()
    store = configured_store(domain, broker, settings=settings)
    other = configured_store(domain, other_broker, settings=settings)
    taken = []
    original = tracker_store_module._known_new_events

    def known(tracker, stored):
        new = original(tracker, stored) if shortcut else None
        taken.append(new is not None)
        return new

    sender = "save-1"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tracker_store_module, "_known_new_events", known)
        clock = iter(range(1000, 2000))
        tracker = DialogueStateTracker(sender, domain.slots)
        for event in _session_start(clock) if sessions else []:
            tracker.update(event)
        tracker.update(UserUttered("where is my card", timestamp=next(clock)))
        await store.save(tracker)
        for turn in range(3):
            tracker = await store.retrieve(sender)
            tracker.update(SlotSet("topic", f"t{turn}", timestamp=next(clock)))
            await store.save(tracker)  # the processor may save twice in one turn
            tracker.update(UserUttered(f"turn {turn}", timestamp=next(clock)))
            if concurrent and turn == 1:  # another server saves this conversation meanwhile
                theirs = await other.retrieve(sender)
                theirs.update(SlotSet("topic", "theirs", timestamp=next(clock)))
                await other.save(theirs)
            await store.save(tracker)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stored = json.loads(client.get(keys.RASA_TRACKER.format(ns=namespace, conversation=sender)))
    client.close()
    return stored["events"], broker.published + other_broker.published, sum(taken)


@pytest.mark.parametrize("sessions", [False, True])
@pytest.mark.parametrize("concurrent", [False, True])
async def test_saving_without_deserialising_stores_and_streams_what_rasas_way_does(
    state_redis: RedisServer, domain: Domain, concurrent: bool, sessions: bool
) -> None:
    name = f"{concurrent}{sessions}"
    fast = await _run_saves(state_redis.url, f"fast{name}", domain, True, concurrent, sessions)
    slow = await _run_saves(state_redis.url, f"slow{name}", domain, False, concurrent, sessions)
    assert fast[:2] == slow[:2]
    assert len(fast[0]) == (8 if concurrent else 7) + (5 if sessions else 0)
    assert [e["sender_id"] for e in fast[1]] == ["save-1"] * len(fast[1])
    # without the other server: every save but the first (a new conversation). With it: not our
    # save after theirs (theirs counts too), and in one session not the later ones either (the
    # merge put their later slot before our earlier message: events out of time order, which
    # only Rasa's merge handles); in the latest of two sessions the later ones do (their new
    # events are later than every stored one, all Rasa's merge asks of them there)
    assert fast[2] == (4 if concurrent and not sessions else 6) and slow[2] == 0


def test_the_shortcut_refuses_events_out_of_time_order_and_trackers_it_did_not_read(
    domain: Domain,
) -> None:
    tracker = DialogueStateTracker("order", domain.slots)
    tracker.update(UserUttered("a", timestamp=10))
    tracker.update(UserUttered("b", timestamp=20))
    assert tracker_store_module._known_new_events(tracker, "{}") is None  # not read by the store
    tracker_store_module._remember(tracker, "{}")
    assert tracker_store_module._known_new_events(tracker, "{}") == []
    assert tracker_store_module._known_new_events(tracker, '{"other": 1}') is None
    tracker.update(SlotSet("topic", "x", timestamp=30))
    assert [e.timestamp for e in tracker_store_module._known_new_events(tracker, "{}")] == [30]
    tracker.update(SlotSet("topic", "y", timestamp=5))  # later events are not checked
    assert len(tracker_store_module._known_new_events(tracker, "{}")) == 2
    early = DialogueStateTracker("early", domain.slots)
    early.update(UserUttered("a", timestamp=10))
    tracker_store_module._remember(early, "{}")
    early.update(SlotSet("topic", "x", timestamp=10))  # not later than the stored events
    assert tracker_store_module._known_new_events(early, "{}") is None
    unordered = DialogueStateTracker("unordered", domain.slots)
    unordered.update(UserUttered("a", timestamp=30))
    unordered.update(UserUttered("b", timestamp=20))
    tracker_store_module._remember(unordered, "{}")
    assert tracker_store_module._known_new_events(unordered, "{}") is None


async def test_the_latest_of_several_sessions_is_saved_after_the_earlier_ones(
    state_redis: RedisServer, domain: Domain
) -> None:
    settings = Settings(redis_url=state_redis.url, queue_namespace="sessions")
    store = configured_store(domain, settings=settings)
    tracker = DialogueStateTracker("two-sessions", domain.slots)
    for event in (
        ActionExecuted("action_session_start", timestamp=1),
        SessionStarted(timestamp=1),
        UserUttered("first", timestamp=2),
        ActionExecuted("action_session_start", timestamp=3),
        SessionStarted(timestamp=3),
        UserUttered("second", timestamp=4),
    ):
        tracker.update(event)
    await store.save(tracker)
    latest = await store.retrieve("two-sessions")
    assert [e.text for e in latest.events if isinstance(e, UserUttered)] == ["second"]
    assert len(tracker_store_module._earlier_events(latest)) == 3  # the first session
    latest.update(UserUttered("third", timestamp=5))
    await store.save(latest)
    full = await store.retrieve_full_tracker("two-sessions")
    texts = [e.text for e in full.events if isinstance(e, UserUttered)]
    assert texts == ["first", "second", "third"]


def _rich_conversation(domain: Domain) -> DialogueStateTracker:
    """Events as Rasa stores them: parse data with a ranking and an embedding, bot messages with
    buttons and metadata, floats, non-ASCII text, nested slot values."""
    tracker = DialogueStateTracker("rich", domain.slots)
    parse = {
        "text": "où est ma carte? 1/3 £25.50 \u2028",
        "intent": {"name": "card_arrival", "confidence": 0.1 + 0.2},
        "intent_ranking": [{"name": f"i{n}", "confidence": 1 / (n + 3)} for n in range(10)],
        "entities": [{"entity": "AMOUNT", "value": "£25.50", "start": 20, "end": 26}],
        "familiarity": {"intent": "card_arrival", "score": -1e-7},
        "embedding": "A/b+" * 128,
    }
    tracker.update(ActionExecuted("action_session_start", timestamp=1.5))
    tracker.update(SessionStarted(timestamp=1.5))
    tracker.update(
        UserUttered(parse["text"], parse["intent"], parse["entities"], parse, timestamp=2.25)
    )
    tracker.update(SlotSet("topic", {"state": [1, 2.5, None, True], "big": 2**63}, timestamp=3))
    tracker.update(
        BotUttered(
            "Here 🙂", {"buttons": [{"title": "Yes", "payload": "/affirm"}]}, {"reply": "a"}, 4
        )
    )
    return tracker


def test_trackers_written_and_read_by_ujson_are_rasas(domain: Domain) -> None:
    ours = RedisTrackerStore(
        domain, RedisTarget(url="redis://unused"), namespace="x", retention_seconds=1
    )
    tracker = _rich_conversation(domain)
    rasas = SerializedTrackerAsText.serialise_tracker(tracker)
    written = ours.serialise_tracker(tracker)
    assert json.loads(written) == json.loads(rasas)
    for text in (written, rasas):
        read = ours.deserialise_tracker("rich", text)
        expected = TrackerStore.deserialise_tracker(ours, "rich", rasas)
        assert read.current_state(EventVerbosity.ALL) == expected.current_state(EventVerbosity.ALL)
        assert list(read.events) == list(tracker.events)


def test_numbers_beyond_64_bits_and_lone_surrogates_are_kept(domain: Domain) -> None:
    ours = RedisTrackerStore(
        domain, RedisTarget(url="redis://unused"), namespace="x", retention_seconds=1
    )
    tracker = _rich_conversation(domain)
    tracker.update(SlotSet("topic", {"huge": 2**70, "lone": "\ud800"}, timestamp=5))
    rasas = SerializedTrackerAsText.serialise_tracker(tracker)
    written = ours.serialise_tracker(tracker)
    assert json.loads(written) == json.loads(rasas)
    for text in (written, rasas):  # ujson refuses to read the surrogate: the standard library
        read = ours.deserialise_tracker("rich", text)
        assert read.get_slot("topic") == {"huge": 2**70, "lone": "\ud800"}
    with pytest.raises(TrackerDeserialisationException):
        ours.deserialise_tracker("rich", b"\x80\x04pickle")


def test_the_shortcut_for_the_latest_session_refuses_what_rasas_merge_would_not_append(
    domain: Domain,
) -> None:
    def latest(*new: tuple[str, float]) -> DialogueStateTracker:
        tracker = DialogueStateTracker("latest", domain.slots)
        tracker.update(ActionExecuted("action_session_start", timestamp=20))
        tracker.update(UserUttered("b", timestamp=30))
        earlier = (SlotSet("topic", "a", timestamp=10),)
        tracker_store_module._remember(tracker, "{}", earlier)
        for text, timestamp in new:
            tracker.update(UserUttered(text, timestamp=timestamp))
        return tracker

    assert tracker_store_module._known_new_events(latest(), "{}") == []
    assert len(tracker_store_module._known_new_events(latest(("c", 31), ("d", 32)), "{}")) == 2
    assert tracker_store_module._known_new_events(latest(("c", 30)), "{}") is None  # not later
    assert tracker_store_module._known_new_events(latest(("c", 31), ("d", 31)), "{}") is None
    assert tracker_store_module._known_new_events(latest(("c", 31)), '{"x": 1}') is None
    same_start = DialogueStateTracker("same", domain.slots)  # the merge could keep it alone
    same_start.update(SlotSet("topic", "a", timestamp=10))
    tracker_store_module._remember(same_start, "{}", (SlotSet("topic", "a", timestamp=10),))
    same_start.update(UserUttered("c", timestamp=40))
    assert tracker_store_module._known_new_events(same_start, "{}") is None
    bounded = DialogueStateTracker("bounded", domain.slots, max_event_history=10)
    bounded.update(UserUttered("b", timestamp=30))
    tracker_store_module._remember(bounded, "{}", (SlotSet("topic", "a", timestamp=10),))
    bounded.update(UserUttered("c", timestamp=40))
    assert tracker_store_module._known_new_events(bounded, "{}") is None
