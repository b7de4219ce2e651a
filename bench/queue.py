"""Benchmark of the handoff queue against a fresh local Redis.

    python -m bench.queue [--workers 64] [--seconds 5] [--rate 100] [--notify-seconds 10]
                          [--appendfsync always,everysec] [--processes 1] [--no-uvloop]
                          [--no-autobatch]

Prints, in one run:

1. ticket lifecycles per second: each worker loops enqueue -> claim_next -> one customer message
   -> one agent message -> resolve (five atomic queue calls, five round trips) for ``--seconds``;
2. enqueue-to-agent-notified latency p50/p99 at a steady ``--rate`` tickets/s: auto-assign agents
   block on their inbox streams; the latency runs from just before ``enqueue`` is called to the
   moment the agent's blocked read returns the ``assigned`` event;
3. ``redis-benchmark -t set`` on the same server, for scale.

Each measurement runs on a fresh server started by :class:`bot.runtime.redis_server.RedisServer` in a
temporary directory, once per persistence mode: by default first with the product's setting (AOF,
``appendfsync always``: every write is on disk before Redis answers, so each Redis event-loop turn
waits for an fsync), then with ``appendfsync everysec``. The figures depend on the disk's fsync
latency and on whatever else runs on the machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import redis
from redis.asyncio.connection import DefaultParser

from bot.queue import Customer, HandoffQueue, IntentScore, Summary, TranscriptLine
from bot.runtime.redis_server import RedisServer, find_redis_tool

SUMMARY = Summary(
    text="card declined twice; customer frustrated",
    intents=(IntentScore("card_declined", 0.41), IntentScore("card_blocked", 0.33)),
    transcript=(
        TranscriptLine(
            "customer", "my card was declined at the shop", 1.0, "card_declined", 0.41, -0.45
        ),
        TranscriptLine("bot", "I'm sorry. Was it a contactless payment?", 2.0),
        TranscriptLine(
            "customer", "yes and it happened twice, get me a person", 3.0, "handoff", 0.88, -0.7
        ),
    ),
)


def _use_uvloop(enabled: bool) -> str:
    if not enabled:
        return "asyncio"
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


# -- 1. lifecycles ---------------------------------------------------------------------------


@dataclass
class LifecycleResult:
    count: int
    seconds: float
    errors: int


async def _lifecycles(
    url: str, ns: str, workers: int, seconds: float, tag: str, autobatch: bool = True
) -> LifecycleResult:
    queue = HandoffQueue.from_url(
        url, namespace=ns, max_connections=workers + 4, autobatch=autobatch
    )
    for w in range(workers):
        await queue.agent_online(f"{tag}-agent-{w}", ["cards"], 1, auto_assign=False)
    done = 0
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done, errors
        agent = f"{tag}-agent-{w}"
        k = 0
        while time.perf_counter() < deadline:
            conv = f"{tag}-{w}-{k}"
            k += 1
            try:
                await queue.enqueue(
                    conv, Customer(f"cust-{conv}", "Bench"), ["low_confidence"], 5, "cards", SUMMARY
                )
                ticket = await queue.claim_next(agent)
                if ticket is None:
                    errors += 1
                    continue
                await queue.send_message(
                    ticket.id, "customer", ticket.customer.id, "hello, anyone?", f"c-{conv}"
                )
                await queue.send_message(ticket.id, "agent", agent, "Hi, I'm on it.", f"a-{conv}")
                await queue.resolve(ticket.id, agent, "resolved")
                done += 1
            except Exception:  # noqa: BLE001  (counted and reported)
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    elapsed = time.perf_counter() - start
    await queue.aclose()
    return LifecycleResult(done, elapsed, errors)


def _lifecycle_process(args: tuple[str, str, int, float, str, bool, bool]) -> LifecycleResult:
    url, ns, workers, seconds, tag, uv, autobatch = args
    _use_uvloop(uv)
    return asyncio.run(_lifecycles(url, ns, workers, seconds, tag, autobatch))


# -- 2. notify latency -----------------------------------------------------------------------


async def _notify_latency(
    url: str, ns: str, rate: float, seconds: float, agents: int, autobatch: bool = True
) -> list[float]:
    queue = HandoffQueue.from_url(
        url, namespace=ns, max_connections=agents * 2 + 8, autobatch=autobatch
    )
    started: dict[str, float] = {}
    notified: dict[str, float] = {}
    stop = asyncio.Event()
    ids = [f"notify-agent-{a}" for a in range(agents)]
    cursors = {}
    for a in ids:
        await queue.agent_online(a, ["cards"], 50)
        cursors[a] = "0-0"
    ready = asyncio.Event()
    waiting = 0

    async def agent_loop(agent: str) -> None:
        nonlocal waiting
        cursor = cursors[agent]
        first = True
        while not stop.is_set():
            if first:
                waiting += 1
                if waiting == len(ids):
                    ready.set()
                first = False
            events = await queue.read_agent_events(agent, after=cursor, block_ms=200)
            now = time.perf_counter()
            for e in events:
                cursor = e.id
                if e.type == "assigned" and e.ticket_id:
                    notified.setdefault(e.ticket_id, now)
                    asyncio.ensure_future(queue.resolve(e.ticket_id, agent))

    tasks = [asyncio.create_task(agent_loop(a)) for a in ids]
    await ready.wait()
    await asyncio.sleep(0.2)  # every reader is blocked in XREAD
    total = int(rate * seconds)
    t0 = time.perf_counter()
    pending = []

    async def one(i: int) -> None:
        conv = f"notify-{i}"
        begin = time.perf_counter()
        ticket = await queue.enqueue(
            conv, Customer(f"c-{i}"), ["low_confidence"], 5, "cards", SUMMARY
        )
        started[ticket.id] = begin

    for i in range(total):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append(asyncio.create_task(one(i)))
    await asyncio.gather(*pending)
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*tasks)
    await queue.aclose()
    return [(notified[t] - s) * 1000 for t, s in started.items() if t in notified] + [
        float("inf") for t in started if t not in notified
    ]


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


# -- 3. redis-benchmark ----------------------------------------------------------------------


def _redis_benchmark(port: int, requests: int) -> str:
    tool = find_redis_tool("redis-benchmark")
    if tool is None:
        return "redis-benchmark: not installed (Debian's redis-tools has it); SET rate not measured"
    out = subprocess.run(
        [tool, "-p", str(port), "-t", "set", "-n", str(requests), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = (out.stdout.strip().splitlines() or ["?"])[-1]
    line = line.split("\r")[-1].strip()
    return f"redis-benchmark -t set -n {requests} (50 clients, no pipelining): {line}"


def _fsync_probe(directory: str, count: int = 200) -> str:
    """fsync latency of the disk under the data directory (what ``appendfsync always`` waits for
    on every Redis turn), measured with small appends like the AOF's."""
    path = os.path.join(directory, "fsync-probe")
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(count):
            os.write(fd, b"x" * 512)
            start = time.perf_counter()
            os.fsync(fd)
            times.append((time.perf_counter() - start) * 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    return f"p50 {_percentile(times, 50):.2f} ms, p99 {_percentile(times, 99):.2f} ms"


def _cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) a process has used so far, from /proc (0 where unavailable)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


# -- main ------------------------------------------------------------------------------------


def run_mode(args: argparse.Namespace, mode: str, loop_name: str) -> dict[str, float]:
    """All three measurements on one fresh server with this persistence mode."""
    aof = mode != "off"
    server = RedisServer(appendonly=aof, appendfsync=mode if aof else "everysec")
    figures: dict[str, float] = {}
    with server:
        version = subprocess.run(
            [server.executable, "--version"], capture_output=True, text=True
        ).stdout.split()
        v = next((p.split("=", 1)[1] for p in version if p.startswith("v=")), "?")
        durability = f"AOF appendfsync {mode}" if aof else "no persistence"
        print(f"\n== redis-server {v} ({server.executable}), {durability}, data in "
              f"{server.data_dir}; {os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.2f} before; Python {platform.python_version()} with "
              f"{loop_name}; redis-py {redis.__version__} with {DefaultParser.__name__}; "
              f"autobatch {'off' if args.no_autobatch else 'on'}", flush=True)  # fmt: skip
        if aof:
            print(f"disk fsync there: {_fsync_probe(str(server.data_dir))}", flush=True)

        # 1. lifecycles
        redis_cpu0, client_cpu0 = _cpu_seconds(server.pid), time.process_time()
        if args.processes <= 1:
            res = asyncio.run(
                _lifecycles(
                    server.url, "bench", args.workers, args.seconds, "p0", not args.no_autobatch
                )
            )
            results = [res]
        else:
            jobs = [
                (
                    server.url,
                    "bench",
                    args.workers,
                    args.seconds,
                    f"p{i}",
                    not args.no_uvloop,
                    not args.no_autobatch,
                )  # fmt: skip
                for i in range(args.processes)
            ]
            with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
                results = pool.map(_lifecycle_process, jobs)
        count = sum(r.count for r in results)
        elapsed = max(r.seconds for r in results)
        errors = sum(r.errors for r in results)
        redis_us = (_cpu_seconds(server.pid) - redis_cpu0) / max(count, 1) * 1e6
        client = f", client {(time.process_time() - client_cpu0) / max(count, 1) * 1e6:.0f} us"
        figures["lifecycles_per_s"] = count / elapsed
        print(
            f"lifecycles: {count / elapsed:,.0f}/s  ({count:,} in {elapsed:.1f} s; "
            f"{args.processes} process(es) x {args.workers} workers; each lifecycle = enqueue, "
            f"claim_next, customer message, agent message, resolve = 5 atomic calls; errors "
            f"{errors}; CPU per lifecycle: Redis {redis_us:.0f} us"
            f"{client if args.processes <= 1 else ''})",
            flush=True,
        )

        # 2. notify latency
        lat = asyncio.run(
            _notify_latency(
                server.url,
                "notify",
                args.rate,
                args.notify_seconds,
                args.agents,
                not args.no_autobatch,
            )  # fmt: skip
        )
        missed = sum(1 for x in lat if x == float("inf"))
        finite = [x for x in lat if x != float("inf")] or [float("nan")]
        figures["notify_p50_ms"] = _percentile(finite, 50)
        figures["notify_p99_ms"] = _percentile(finite, 99)
        print(
            f"enqueue -> agent notified at {args.rate:.0f} tickets/s for {args.notify_seconds:.0f} s "
            f"({len(lat)} tickets, {args.agents} agents blocked on their inbox streams): "
            f"p50 {figures['notify_p50_ms']:.2f} ms, p99 {figures['notify_p99_ms']:.2f} ms, "
            f"max {max(finite):.2f} ms, mean {statistics.fmean(finite):.2f} ms; not notified {missed}",
            flush=True,
        )

        # 3. redis-benchmark
        print(_redis_benchmark(server.port, args.set_requests), flush=True)
        print(f"load average after: {os.getloadavg()[0]:.2f}", flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.queue", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--workers", type=int, default=64, help="concurrent lifecycle workers per process"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="client processes for the lifecycle run"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the lifecycle run")
    parser.add_argument("--rate", type=float, default=100.0, help="tickets/s for the latency run")
    parser.add_argument(
        "--notify-seconds", type=float, default=10.0, help="length of the latency run"
    )
    parser.add_argument(
        "--agents", type=int, default=8, help="auto-assign agents in the latency run"
    )
    parser.add_argument(
        "--appendfsync",
        default="always,everysec",
        help="persistence modes to run, comma-separated from always, everysec, off "
        "(default: always,everysec: the product's setting, then Redis's usual one)",
    )
    parser.add_argument("--set-requests", type=int, default=100_000)
    parser.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop")
    parser.add_argument(
        "--no-autobatch",
        action="store_true",
        help="send every queue call on its own (HandoffQueue(autobatch=False))",
    )
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.appendfsync.split(",") if m.strip()]
    bad = [m for m in modes if m not in ("always", "everysec", "off")]
    if bad or not modes:
        parser.error(f"--appendfsync takes always, everysec or off, not {bad or modes}")
    loop_name = _use_uvloop(not args.no_uvloop)
    summary = {mode: run_mode(args, mode, loop_name) for mode in modes}
    print("\n== summary (targets on 2 cores: >= 3,000 lifecycles/s, notify p99 <= 10 ms)")
    for mode, f in summary.items():
        print(
            f"  {mode:>8}: {f['lifecycles_per_s']:,.0f} lifecycles/s, notify p50 "
            f"{f['notify_p50_ms']:.2f} ms p99 {f['notify_p99_ms']:.2f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
