"""Benchmark: idle customer WebSockets on one gateway, and what they cost.

    python -m bench.sockets [--sockets 5000] [--sample 500] [--interval 0.01] [--json out.json]

Starts its own redis-server and gateway (``python -m bot.web``) on free ports; no Rasa is needed
(the gateway's Rasa URL points at a port nobody listens on). Rate limits and the per-IP socket cap
are relaxed through the gateway's settings env (``GENEROUS_ENV``), and the open-files limit is
raised in this process with ``resource.setrlimit`` before the gateway starts (it inherits it).

1. Creates ``--sockets`` conversations through the API and opens one customer WebSocket for each
   (aiohttp client, hello with the conversation's token).
2. Measures, with all of them open and idle: the gateway's Redis connections (``CLIENT LIST``
   entries named ``gateway-<pid>``, and ``connected_clients`` from ``INFO clients`` minus this
   bench's own), the gateway's RSS before and after opening them and the RSS per idle socket
   (``VmRSS`` in ``/proc/<pid>/status``).
3. Latency: ``--sample`` messages, one every ``--interval`` seconds, each to a different
   conversation, appended with ``ConversationEvents.append`` (the gateway's own writer: one
   script, ``XADD`` and the ``PUBLISH`` of its notice), timed from just before the append to the
   event arriving on that conversation's socket, while all sockets stay open. p50/p99, target
   p99 <= 50 ms.

The figures are printed beside their targets. On a shared machine the latency tail reflects the
other load too: say so when reporting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

from bot.runtime import services
from bot.runtime.ports import free_port
from bot.runtime.redis_server import RedisServer
from bot.web.events import ConversationEvents
from bot.web.limits import GENEROUS_ENV

NAMESPACE = "benchsockets"
TARGET_CONNECTIONS = 16
TARGET_P99_MS = 50.0
BENCH_CLIENT = "bench-sockets"


def raise_open_files(wanted: int) -> int:
    """Raise this process's soft open-files limit towards ``wanted`` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Sockets:
    """The open customer sockets and, per marker text, when its event arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.waiters: dict[str, asyncio.Future[float]] = {}
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.by_conversation: dict[str, aiohttp.ClientWebSocketResponse] = {}
        self.readers: list[asyncio.Task] = []
        self.wrong = 0

    async def open(
        self, http: aiohttp.ClientSession, url: str, conversation_id: str, token: str
    ) -> None:
        ws = await http.ws_connect(
            f"{url}/api/conversations/{conversation_id}/ws", heartbeat=None, timeout=60
        )
        await ws.send_json({"type": "hello", "token": token, "after": "0-0"})
        ready = await ws.receive_json(timeout=60)
        if ready.get("type") != "ready":
            raise RuntimeError(f"socket refused: {ready}")
        self.sockets.append(ws)
        self.by_conversation[conversation_id] = ws
        self.readers.append(asyncio.create_task(self._read(ws, conversation_id)))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, conversation_id: str) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            if frame.get("type") != "event":
                continue
            marker = frame["event"].get("text", "")
            if not marker.startswith("bench "):
                continue
            if not marker.endswith(conversation_id):
                self.wrong += 1
            now = time.perf_counter()
            waiter = self.waiters.pop(marker, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(now)

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)


async def gateway_connections(redis: Redis, pid: int) -> tuple[int, int]:
    """(CLIENT LIST entries named gateway-<pid>, INFO connected_clients minus this bench's)."""
    clients = await redis.client_list()
    named = sum(1 for c in clients if c.get("name") == f"gateway-{pid}")
    ours = sum(1 for c in clients if c.get("name") == BENCH_CLIENT)
    info = await redis.info("clients")
    return named, int(info["connected_clients"]) - ours


async def bench(args: argparse.Namespace, url: str, redis_url: str, pid: int) -> dict[str, Any]:
    redis = Redis.from_url(redis_url, decode_responses=True, client_name=BENCH_CLIENT)
    events = ConversationEvents(redis, NAMESPACE)
    sockets = Sockets()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        gate = asyncio.Semaphore(50)

        async def create() -> tuple[str, str]:
            async with gate, http.post(f"{url}/api/conversations") as response:
                if response.status not in (200, 201):
                    raise RuntimeError(f"create: {response.status} {await response.text()}")
                body = await response.json()
            return body["conversation_id"], body["token"]

        started = time.perf_counter()
        conversations = await asyncio.gather(*(create() for _ in range(args.sockets)))
        print(f"created {len(conversations)} conversations in {time.perf_counter() - started:.1f}s")
        await asyncio.sleep(2)
        rss_before = rss_kib(pid)
        idle_before = await gateway_connections(redis, pid)

        started = time.perf_counter()
        opening = asyncio.Semaphore(100)

        refused: list[str] = []
        client_errors: list[str] = []

        async def open_one(conversation_id: str, token: str) -> None:
            async with opening:
                for attempt in range(3):  # aiohttp's client reader trips now and then under load
                    try:
                        await sockets.open(http, url, conversation_id, token)
                        return
                    except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError) as error:
                        failure = f"{type(error).__name__}: {error}"
                    except TypeError as error:  # an error frame instead of "ready"
                        failure = f"client: {error}"
                        client_errors.append(failure)
                    if attempt == 2:
                        refused.append(failure)

        await asyncio.gather(*(open_one(c, t) for c, t in conversations))
        print(f"opened {len(sockets.sockets)} sockets in {time.perf_counter() - started:.1f}s")
        for reason in sorted(set(refused))[:5]:
            print(f"  refused: {reason}")
        if client_errors:
            print(f"  {len(client_errors)} opens retried after a client-side frame error")
        cpu_idle = cpu_seconds(pid)
        await asyncio.sleep(args.settle)
        cpu_idle = (cpu_seconds(pid) - cpu_idle) / args.settle
        rss_after = rss_kib(pid)
        named, by_info = await gateway_connections(redis, pid)

        latencies: list[float] = []
        lost = 0
        opened = set(sockets.by_conversation)
        sample = [c for c in conversations if c[0] in opened]
        sample = sample[:: max(1, len(sample) // args.sample)][: args.sample]

        async def one(conversation_id: str) -> None:
            nonlocal lost
            marker = f"bench {uuid.uuid4().hex[:8]} {conversation_id}"
            waiter = asyncio.get_running_loop().create_future()
            sockets.waiters[marker] = waiter
            sent = time.perf_counter()
            await events.append(conversation_id, [{"type": "notice", "text": marker}])
            try:
                arrived = await asyncio.wait_for(waiter, 10)
            except asyncio.TimeoutError:
                lost += 1
                return
            latencies.append((arrived - sent) * 1000)

        tasks = []
        cpu_busy, busy_started = cpu_seconds(pid), time.perf_counter()
        for conversation_id, _token in sample:
            tasks.append(asyncio.create_task(one(conversation_id)))
            await asyncio.sleep(args.interval)
        await asyncio.gather(*tasks)
        cpu_busy = (cpu_seconds(pid) - cpu_busy) / (time.perf_counter() - busy_started)
        named_end, by_info_end = await gateway_connections(redis, pid)
        await sockets.close()
    await redis.close()
    open_count = len(sockets.sockets)
    return {
        "sockets": open_count,
        "sockets_refused": len(refused),
        "gateway_redis_connections_named": max(named, named_end),
        "gateway_redis_connections_info": max(by_info, by_info_end),
        "gateway_redis_connections_before_sockets": idle_before[0],
        "rss_before_mib": rss_before / 1024,
        "rss_after_mib": rss_after / 1024,
        "rss_per_socket_kib": (rss_after - rss_before) / max(1, open_count),
        "gateway_cpu_idle": cpu_idle,
        "gateway_cpu_during_latency": cpu_busy,
        "latency_samples": len(latencies),
        "latency_lost": lost,
        "latency_p50_ms": statistics.median(latencies) if latencies else None,
        "latency_p99_ms": percentile(latencies, 0.99) if latencies else None,
        "latency_max_ms": max(latencies) if latencies else None,
        "wrong_socket": sockets.wrong,
    }


def report(figures: dict[str, Any]) -> None:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    rows = [
        ("open idle sockets", f"{figures['sockets']}", "5,000"),
        ("sockets refused", f"{figures['sockets_refused']}", "0"),
        (
            "gateway Redis connections (CLIENT LIST, named)",
            f"{figures['gateway_redis_connections_named']}",
            f"<= {TARGET_CONNECTIONS}",
        ),
        (
            "gateway Redis connections (INFO clients - bench)",
            f"{figures['gateway_redis_connections_info']}",
            f"<= {TARGET_CONNECTIONS}",
        ),
        ("gateway RSS before sockets", f"{figures['rss_before_mib']:.1f} MiB", "reported"),
        ("gateway RSS with sockets open", f"{figures['rss_after_mib']:.1f} MiB", "reported"),
        ("RSS per idle socket", f"{figures['rss_per_socket_kib']:.1f} KiB", "reported"),
        ("gateway CPU, sockets idle", f"{figures['gateway_cpu_idle']:.0%}", "reported"),
        ("gateway CPU, while sending", f"{figures['gateway_cpu_during_latency']:.0%}", "reported"),
        (
            f"XADD -> socket latency p50 ({figures['latency_samples']} msgs)",
            ms(figures["latency_p50_ms"]),
            "reported",
        ),
        ("XADD -> socket latency p99", ms(figures["latency_p99_ms"]), f"<= {TARGET_P99_MS:.0f} ms"),
        ("XADD -> socket latency max", ms(figures["latency_max_ms"]), "reported"),
        ("messages not delivered within 10 s", f"{figures['latency_lost']}", "0"),
        ("events on a socket of another conversation", f"{figures['wrong_socket']}", "0"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'figure'.ljust(width)}  {'measured':>12}  target")
    for name, value, target in rows:
        print(f"{name.ljust(width)}  {value:>12}  {target}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sockets", description=__doc__)
    parser.add_argument("--sockets", type=int, default=5000)
    parser.add_argument("--sample", type=int, default=500)
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between messages")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds idle before measuring")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    limit = raise_open_files(2 * args.sockets + 1024)
    if limit < 2 * args.sockets + 256:
        raise SystemExit(f"open-files limit {limit} is too low for {args.sockets} sockets")
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-sockets-")))
        redis = stack.enter_context(RedisServer(data_dir=tmp / "redis"))
        port = free_port()
        env = {
            "REDIS_URL": redis.url,
            "RASA_URL": f"http://127.0.0.1:{free_port()}",  # no Rasa: nobody listens there
            "SUPPORT_QUEUE_NAMESPACE": NAMESPACE,
            "GATEWAY_PORT": str(port),
            **GENEROUS_ENV,
        }
        gateway = services.gateway_service("127.0.0.1", port, tmp / "logs", env, name="gateway")
        stack.enter_context(services.running([gateway], timeout=60))
        assert gateway.process is not None
        figures = asyncio.run(
            bench(args, f"http://127.0.0.1:{port}", redis.url, gateway.process.pid)
        )
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
