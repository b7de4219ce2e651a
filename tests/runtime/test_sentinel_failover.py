"""A real Redis Sentinel failover under load: the queue and a gateway follow the new master.

A primary, a replica and three sentinels (real ``redis-server`` processes on free ports, the
sentinel settings of deploy/compose.yml and docs/runtime.md: down-after-milliseconds 2000,
failover-timeout 10000, parallel-syncs 1). Concurrent queue enqueues (the queue built by
:func:`bot.queue.open_queue_url` with ``REDIS_SENTINELS``), a writer that confirms each write with
``WAIT 1``, and a gateway process (``REDIS_SENTINELS`` in its environment, ``REDIS_URL`` pointing
nowhere) creating conversations while a customer's WebSocket waits on its blocking ``XREAD``.
The primary is SIGKILLed; then:

* service resumes within 10 s: the time from the kill to the first acknowledged enqueue (which
  can only be on the new master) is measured and printed;
* every write confirmed by ``WAIT 1`` is on the new master; enqueues acknowledged without WAIT
  may be lost (asynchronous replication): how many is counted and printed, not asserted;
* the gateway answers again, and the customer's socket (its pump's XREAD) delivers an event
  appended after the failover.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from bot.config import Settings
from bot.queue import open_queue_url
from bot.queue.records import Customer
from bot.redis_clients import RedisTarget, async_redis
from bot.runtime import services
from bot.runtime.ports import free_port
from bot.runtime.redis_server import RedisServer, find_redis_server
from bot.web.limits import GENEROUS_ENV

LOGS = Path(__file__).resolve().parents[2] / "test-artifacts" / "logs"
MASTER = "support"
ORIGIN = "https://shop.example"
DOWN_AFTER_MS = 2000  # as deploy/compose.yml and docs/runtime.md
FAILOVER_TIMEOUT_MS = 10000
RESUME_WITHIN_SECONDS = 10.0


@dataclass
class Cluster:
    primary: RedisServer
    replica: RedisServer
    sentinel_ports: list[int]
    sentinels: list[subprocess.Popen] = field(default_factory=list)

    @property
    def sentinels_setting(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)


def _sentinel_conf(path: Path, port: int, primary_port: int) -> None:
    path.write_text(
        f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {path.parent}\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n"
        f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n"
        f"sentinel parallel-syncs {MASTER} 1\n"
    )


def _until(check, timeout: float, what: str) -> None:
    """Wait for start-up conditions (not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001  (not up yet)
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"not ready after {timeout} s: {what}")
        time.sleep(0.1)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    primary = RedisServer(data_dir=tmp_path / "primary")
    replica = RedisServer(data_dir=tmp_path / "replica")
    sentinel_ports = [free_port() for _ in range(3)]
    c = Cluster(primary, replica, sentinel_ports)
    try:
        primary.start()
        replica.start()
        direct = RedisTarget(url=replica.url).sync_client(decode_responses=True)
        direct.execute_command("REPLICAOF", "127.0.0.1", str(primary.port))
        _until(lambda: direct.info("replication")["master_link_status"] == "up", 20, "replication")
        direct.close()
        for i, port in enumerate(sentinel_ports):
            conf = tmp_path / f"sentinel-{i}" / "sentinel.conf"
            conf.parent.mkdir()
            _sentinel_conf(conf, port, primary.port)
            c.sentinels.append(
                subprocess.Popen(
                    [find_redis_server(), str(conf), "--sentinel"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        import redis  # noqa: PLC0415

        def all_see_everyone() -> bool:
            for port in sentinel_ports:
                s = redis.Redis(port=port, decode_responses=True, socket_timeout=1)
                try:
                    info = s.sentinel_master(MASTER)
                    if int(info["num-other-sentinels"]) < 2 or int(info["num-slaves"]) < 1:
                        return False
                finally:
                    s.close()
            return True

        _until(all_see_everyone, 30, "three sentinels that know each other and the replica")
        yield c
    finally:
        for process in c.sentinels:
            process.kill()
            process.wait()
        replica.stop()
        primary.stop()


async def _writers(
    settings: Settings, stop: asyncio.Event
) -> tuple[list[tuple[float, float, str]], list[int], list[str]]:
    """Enqueue (4 concurrent writers) and WAIT-confirmed SETs until ``stop``."""
    queue = open_queue_url(None, settings, max_connections=16)
    acked: list[tuple[float, float, str]] = []  # (sent, acknowledged, conversation id)
    waited: list[int] = []  # WAIT 1 confirmed: on the replica before the ack
    errors: list[str] = []
    client = async_redis(settings, decode_responses=True)

    async def enqueuer(n: int) -> None:
        i = 0
        while not stop.is_set():
            conversation = f"c{n}-{i}"
            sent = time.monotonic()
            try:
                await queue.enqueue(conversation, Customer(f"u{n}-{i}"), ["asked"], 5, "cards")
                acked.append((sent, time.monotonic(), conversation))
            except Exception as error:  # noqa: BLE001  (counted: a failed, unacknowledged write)
                errors.append(type(error).__name__)
            i += 1
            await asyncio.sleep(0.01)

    async def waiter() -> None:
        i = 0
        while not stop.is_set():
            try:
                await client.set(f"sen:w:{i}", "1")
                if await client.execute_command("WAIT", 1, 1000) >= 1:
                    waited.append(i)
            except Exception as error:  # noqa: BLE001
                errors.append(type(error).__name__)
            i += 1
            await asyncio.sleep(0.01)

    try:
        await asyncio.gather(*(enqueuer(n) for n in range(4)), waiter())
    finally:
        await queue.aclose()
        await client.close()
    return acked, waited, errors


async def test_a_primary_killed_under_load_fails_over_within_ten_seconds(
    cluster: Cluster,
) -> None:
    settings = Settings(
        redis_url=None, redis_sentinels=cluster.sentinels_setting, queue_namespace="sen"
    )
    port = free_port()
    env = {
        "REDIS_SENTINELS": cluster.sentinels_setting,
        "REDIS_SENTINEL_MASTER": MASTER,
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",  # nobody: Sentinel must win
        "RASA_URL": f"http://127.0.0.1:{free_port()}",
        "SUPPORT_QUEUE_NAMESPACE": "sen",
        "WEB_ALLOWED_ORIGINS": ORIGIN,
        "GATEWAY_PORT": str(port),
        **GENEROUS_ENV,
    }
    gateway = services.gateway_service("127.0.0.1", port, LOGS, env, name="gateway-sentinel")
    url = f"http://127.0.0.1:{port}"
    headers = {"Origin": ORIGIN}
    with services.running([gateway], timeout=60):
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/api/conversations", headers=headers) as r:
                assert r.status == 201
                conversation = await r.json()
            ws = await http.ws_connect(
                f"{url.replace('http', 'ws')}/api/conversations/{conversation['conversation_id']}/ws",
                headers=headers,
            )
            await ws.send_json({"type": "hello", "token": conversation["token"], "after": "0-0"})
            assert (await ws.receive_json(timeout=10))["type"] == "ready"

            gateway_ok: list[tuple[float, float]] = []  # (sent, answered 201)

            async def gateway_load(stop: asyncio.Event) -> None:
                while not stop.is_set():
                    sent = time.monotonic()
                    with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                        async with http.post(
                            f"{url}/api/conversations",
                            headers=headers,
                            timeout=aiohttp.ClientTimeout(total=20),
                        ) as r:
                            if r.status == 201:
                                gateway_ok.append((sent, time.monotonic()))
                    await asyncio.sleep(0.05)

            stop = asyncio.Event()
            writers = asyncio.create_task(_writers(settings, stop))
            load = asyncio.create_task(gateway_load(stop))
            await asyncio.sleep(2.0)  # load on the old primary
            cluster.primary.kill()  # SIGKILL
            killed = time.monotonic()
            for _ in range(300):  # until the load acknowledges writes again (bounded: 30 s)
                await asyncio.sleep(0.1)
                if any(s > killed for s, _ in gateway_ok):
                    break
            await asyncio.sleep(2.0)  # load on the new master
            stop.set()
            acked, waited, errors = await writers
            await load

            # the first write sent after the kill that was acknowledged: on the new master
            resumed = min(a for s, a, _ in acked if s > killed) - killed
            gateway_resumed = min(a for s, a in gateway_ok if s > killed) - killed

            # the customer's socket: its XREAD pump follows the new master
            sent = "still there after the failover?"
            async with http.post(
                f"{url}/api/conversations/{conversation['conversation_id']}/messages",
                json={"text": sent, "client_id": "after-failover"},
                headers={**headers, "Authorization": f"Bearer {conversation['token']}"},
            ) as r:
                assert r.status < 500, await r.text()
            texts: list[str] = []
            deadline = time.monotonic() + 20
            while sent not in texts and time.monotonic() < deadline:
                frame = await ws.receive(timeout=20)
                if frame.type != aiohttp.WSMsgType.TEXT:
                    break
                body = json.loads(frame.data)
                if body["type"] == "event":
                    texts.append(body["event"].get("text", ""))
            await ws.close()

    new_master = RedisTarget(
        sentinels=tuple(("127.0.0.1", p) for p in cluster.sentinel_ports), master=MASTER
    ).sync_client(decode_responses=True)
    try:
        assert new_master.connection_pool.get_master_address()[1] == cluster.replica.port
        lost_waited = [i for i in waited if new_master.get(f"sen:w:{i}") is None]
        queue_keys = [f"sen:q:conv:{c}" for _, _, c in acked]
        present = sum(1 for k in queue_keys if new_master.exists(k))
    finally:
        new_master.close()
    lost = len(acked) - present
    print(
        f"\nsentinel failover: queue writes resumed {resumed:.2f} s after SIGKILL of the primary,"
        f" gateway {gateway_resumed:.2f} s; {len(acked)} enqueues acknowledged, {lost} lost"
        f" (async replication); {len(waited)} WAIT-1 writes, {len(lost_waited)} lost;"
        f" {len(errors)} failed calls ({sorted(set(errors))})"
    )
    assert resumed < RESUME_WITHIN_SECONDS
    assert gateway_resumed < RESUME_WITHIN_SECONDS
    assert lost_waited == []
    assert sent in texts, texts
