"""Turn benchmark: the real stack, driven through the gateway at rising concurrency.

    python -m bench.turns [--levels 1,10,25,50,100] [--messages 3] [--min-turns 150]
                          [--rasa 1,2] [--profile DIR] [--json out.json]

Starts its own stack on free ports, as the launcher runs it: a fresh redis-server (AOF,
``appendfsync always``), the action server, the event sink (when the code has one), Rasa with
the trained model (``--rasa N`` replicas, the gateway routing each conversation to one by its
hash ring over ``RASA_URLS``, as the launcher's ``--rasa N``) and the gateway. The gateway runs
with :data:`bot.web.limits.GENEROUS_ENV`: every simulated customer comes from one address, which
the per-address limits would otherwise refuse after 20 conversations a minute. ``--rasa 1,2``
runs the whole benchmark once per replica count, each on a fresh stack, and prints the figures
side by side. At each concurrency level C, C customers at once each open a
conversation through the gateway (``POST /api/conversations``) and send ``--messages`` routine
questions one after the other with no think time (``POST /api/conversations/{id}/messages``,
answered with the bot's replies), then start the next conversation, until the level has sent at
least ``--min-turns`` turns (and at least one conversation per customer).

Printed per level: answered turns/s, p50/p95/p99 round trip, errors (by HTTP status or
exception), and the CPU each process used per answered turn (utime + stime from
``/proc/<pid>/stat``, over the level; a refused turn, e.g. a 503 under overload, costs a little
CPU and counts for none):
Rasa (each replica, and ``rasa (all)`` when there are several), action server, gateway, event
sink, Redis, and ``total``, their sum: at 60 turns/s on 2 cores the total must stay under ~33 ms.
The last line gives turns/s at saturation (the best level).

The CPU per turn is the figure to compare between runs on a shared machine: other processes
steal wall time (turns/s, latencies) but not the CPU a process itself spends per turn.

``--profile DIR``: record Rasa (the first replica) and the action server with py-spy during the
highest level (``--nonblocking``, raw collapsed stacks in ``DIR/rasa.txt`` and
``DIR/actions.txt``, ``DIR/rasa-<N>x.txt`` and ``DIR/actions-<N>x.txt`` with ``--rasa`` lists)
and print, for each, the share of samples by component and the functions with the largest
share of samples, inclusive and self (:func:`top_frames`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp

from bench.web import ROUTINE, percentile
from bot.config import PROJECT_ROOT
from bot.runtime import services
from bot.runtime.internal_secrets import InternalSecrets
from bot.runtime.ports import free_port
from bot.runtime.redis_server import RedisServer
from bot.runtime.training import ensure_model
from bot.web.limits import GENEROUS_ENV

NAMESPACE = "benchturns"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (/proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


@dataclass
class Level:
    """The figures of one concurrency level."""

    concurrency: int
    turns: int = 0
    seconds: float = 0.0
    round_trips_ms: list[float] = field(default_factory=list, repr=False)
    errors: dict[str, int] = field(default_factory=dict)
    cpu_ms_per_turn: dict[str, float] = field(default_factory=dict)

    @property
    def answered(self) -> int:
        """Turns the bot answered (200): what turns/s and CPU per turn count."""
        return len(self.round_trips_ms)

    @property
    def turns_per_second(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    def summary(self) -> dict:
        data = asdict(self)
        data.pop("round_trips_ms")
        data["answered"] = self.answered
        data["turns_per_second"] = round(self.turns_per_second, 1)
        for q in (50, 95, 99):
            data[f"p{q}_ms"] = round(percentile(self.round_trips_ms, q), 1)
        data["cpu_ms_per_turn"] = {k: round(v, 1) for k, v in self.cpu_ms_per_turn.items()}
        return data


# -- the stack ---------------------------------------------------------------------------------


@dataclass
class RunningStack:
    """The started stack: the gateway's URL, the Redis URL and each process's pid."""

    gateway: str
    redis_url: str
    pids: dict[str, int]


def rasa_name(index: int, replicas: int) -> str:
    """The name of Rasa replica ``index`` (from 0) in the pids and figures: ``rasa`` when there is
    one, ``rasa 1``, ``rasa 2``, ... when there are several."""
    return "rasa" if replicas == 1 else f"rasa {index + 1}"


def run_stack(
    stack: ExitStack,
    log_dir: Path,
    gateway_env: dict[str, str] | None = None,
    rasa_replicas: int = 1,
) -> RunningStack:
    """Redis, action server, event sink, ``rasa_replicas`` Rasa servers (calling the one action
    server) and the gateway (``gateway_env`` on top of its environment) on free ports, healthy."""
    redis = RedisServer(data_dir=log_dir / "redis", appendonly=True, appendfsync="always")
    stack.enter_context(redis)
    model = ensure_model(quiet=True)
    env = {
        "REDIS_URL": redis.url,
        "SUPPORT_QUEUE_NAMESPACE": NAMESPACE,
        "EVENTS_DB_URL": f"sqlite:///{log_dir / 'events.db'}",
    }
    actions_port, gateway_port = free_port(), free_port()
    rasa_ports = [free_port() for _ in range(rasa_replicas)]
    rasa_urls = [f"http://127.0.0.1:{port}" for port in rasa_ports]
    action_url = f"http://127.0.0.1:{actions_port}/webhook"
    secrets = InternalSecrets.generate()  # the tokens Rasa, the action server, the gateway share
    named = {"actions": services.action_server(actions_port, log_dir, env, secrets=secrets)}
    for index, port in enumerate(rasa_ports):
        rasa = services.rasa_server(port, model, action_url, log_dir, env, secrets=secrets)
        if rasa_replicas > 1:  # each replica its own log, as the launcher numbers them
            rasa = dataclasses.replace(
                rasa, name=f"rasa {index + 1}", log_path=log_dir / f"rasa-{index + 1}.log"
            )
        named[rasa_name(index, rasa_replicas)] = rasa
    named["gateway"] = services.gateway_service(
        "127.0.0.1",
        gateway_port,
        log_dir,
        {
            **env,
            **secrets.gateway_env(),
            "RASA_URL": rasa_urls[0],
            "RASA_URLS": ",".join(rasa_urls),
            "ACTION_SERVER_URL": action_url,
            **(gateway_env or {}),
        },
    )
    sink = getattr(services, "event_sink_service", None)  # absent before the event sink existed
    if sink is not None:
        named["sink"] = sink(free_port(), log_dir, env)
    stack.enter_context(services.running(list(named.values())))
    pids = {name: service.process.pid for name, service in named.items() if service.process}
    if redis.pid is not None:
        pids["redis"] = redis.pid
    return RunningStack(f"http://127.0.0.1:{gateway_port}", redis.url, pids)


# -- load --------------------------------------------------------------------------------------


async def customer(
    http: aiohttp.ClientSession,
    gateway: str,
    conversations: asyncio.Queue[int],
    messages: int,
    level: Level,
) -> None:
    """Take conversations from the queue until it is empty; each sends ``messages`` turns."""
    while True:
        try:
            index = conversations.get_nowait()
        except asyncio.QueueEmpty:
            return
        try:
            async with http.post(f"{gateway}/api/conversations") as response:
                if response.status != 201:
                    level.errors[f"create {response.status}"] = (
                        level.errors.get(f"create {response.status}", 0) + 1
                    )
                    continue
                created = await response.json()
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            kind = f"create {type(error).__name__}"
            level.errors[kind] = level.errors.get(kind, 0) + 1
            continue
        url = f"{gateway}/api/conversations/{created['conversation_id']}/messages"
        headers = {"Authorization": f"Bearer {created['token']}"}
        for m in range(messages):
            text = ROUTINE[(index + m) % len(ROUTINE)]
            started = time.perf_counter()
            try:
                async with http.post(url, json={"text": text}, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                status = type(error).__name__
            level.turns += 1
            if status == 200:
                level.round_trips_ms.append((time.perf_counter() - started) * 1000)
            else:
                level.errors[str(status)] = level.errors.get(str(status), 0) + 1


async def run_level(
    gateway: str, pids: dict[str, int], concurrency: int, messages: int, min_turns: int
) -> Level:
    level = Level(concurrency)
    count = max(concurrency, math.ceil(min_turns / messages))
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        await asyncio.gather(
            *(customer(http, gateway, queue, messages, level) for _ in range(concurrency))
        )
    level.seconds = time.perf_counter() - started
    for name, pid in pids.items():
        used = cpu_seconds(pid) - before[name]
        level.cpu_ms_per_turn[name] = 1000 * used / level.answered if level.answered else 0.0
    level.cpu_ms_per_turn.update(cpu_totals(level.cpu_ms_per_turn))
    return level


def cpu_totals(per_process: dict[str, float]) -> dict[str, float]:
    """``rasa (all)`` (the sum over Rasa replicas, when there are several) and ``total`` (every
    process of the stack) from the CPU per turn of each process."""
    replicas = [ms for name, ms in per_process.items() if name.startswith("rasa ")]
    totals = {"rasa (all)": sum(replicas)} if len(replicas) > 1 else {}
    totals["total"] = sum(per_process.values())
    return totals


# -- profile -----------------------------------------------------------------------------------


def top_frames(collapsed: Iterable[str], limit: int = 15) -> dict[str, list[tuple[str, float]]]:
    """The functions with the largest share of samples in py-spy's raw (collapsed) output:
    ``inclusive`` (the function is anywhere on the stack) and ``self`` (it is on top)."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = [_function(frame) for frame in stack.split(";")]
        total += samples
        for name in set(frames):
            inclusive[name] += samples
        own[frames[-1]] += samples
    if not total:
        return {"inclusive": [], "self": []}
    return {
        "inclusive": [(name, 100 * n / total) for name, n in inclusive.most_common(limit)],
        "self": [(name, 100 * n / total) for name, n in own.most_common(limit)],
    }


# Where Rasa's time goes, by component: a sample counts for the first component met walking its
# stack from the top (the running function) down, so e.g. urllib called by jsonschema counts as
# jsonschema. Matched on the frame's file path.
COMPONENTS: list[tuple[str, tuple[str, ...]]] = [
    ("jsonschema validation", ("jsonschema/",)),
    (
        "SQL event broker (sqlalchemy/SQLite)",
        ("sqlalchemy/", "rasa/core/brokers/sql.py", "sqlite3/"),
    ),
    (
        "Redis clients (event stream, tracker and lock stores)",
        ("bot/analytics/rasa_broker.py", "redis/"),
    ),
    ("NLU pipeline", ("rasa/nlu/", "bot/nlu/", "onnxruntime/", "spacy/", "tokenizers/", "thinc/")),
    ("policies (TensorFlow, rules, memoization)", ("rasa/core/policies/", "tensorflow/", "keras/")),
    ("featurizers", ("rasa/core/featurizers/",)),
    ("tracker, events, domain", ("rasa/shared/core/", "rasa/core/tracker_store.py")),
    ("graph runner", ("rasa/engine/",)),
    ("action server call (aiohttp client)", ("aiohttp/", "rasa/utils/endpoints.py")),
    ("HTTP server (sanic)", ("sanic/", "httptools")),
    (  # the action server imports them relative to the project (its working directory)
        "project actions (actions/, bot's domain modules)",
        tuple(
            f"{root}{name}"
            for root in (" (", f"{PROJECT_ROOT}/")
            for name in ("actions/", "bot/signals.py", "bot/escalation.py", "bot/sentiment.py")
        ),
    ),
    ("rasa_sdk", ("rasa_sdk/",)),
    ("JSON", ("json/",)),
    ("logging", ("logging/", "structlog/")),
]


def components(collapsed: Iterable[str]) -> list[tuple[str, float]]:
    """Share of samples per component (:data:`COMPONENTS`), largest first; the rest is ``other``
    (with the file of the running function)."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        counts[_component(stack.split(";"))] += int(count)
    return [(name, 100 * n / total) for name, n in counts.most_common()] if total else []


def _component(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, markers in COMPONENTS:
            if any(marker in frame for marker in markers):
                return name
    return f"other ({_function(frames[-1])})"


def _function(frame: str) -> str:
    """``validate (jsonschema/validators.py:1120)`` -> ``validate (jsonschema/validators.py)``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rpartition(":")[0] or where.rstrip(")")
    for marker in ("site-packages/", "python3.10/", "/wt-turncost/", "/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def start_profile(pid: int, out: Path) -> subprocess.Popen | None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("py-spy is not installed (pip install py-spy): no profile", flush=True)
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [py_spy, "record", "--pid", str(pid), "--format", "raw", "--nonblocking"]
    command += ["--rate", "100", "-o", str(out)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def stop_profile(process: subprocess.Popen) -> None:
    process.send_signal(2)  # SIGINT: py-spy writes its output and exits
    process.wait(timeout=60)


# -- main --------------------------------------------------------------------------------------


def print_level(level: Level) -> None:
    s = level.summary()
    cpu = ", ".join(f"{name} {ms:.1f}" for name, ms in s["cpu_ms_per_turn"].items())
    errors = sum(level.errors.values())
    print(
        f"C={level.concurrency:>4}  turns {level.turns:>5} (answered {level.answered:>5})  "
        f"{s['turns_per_second']:>6.1f} turns/s  "
        f"p50 {s['p50_ms']:>7.0f} ms  p95 {s['p95_ms']:>7.0f} ms  p99 {s['p99_ms']:>7.0f} ms  "
        f"errors {errors} {level.errors or ''}\n        CPU ms/turn: {cpu}",
        flush=True,
    )


async def bench(
    args: argparse.Namespace, gateway: str, pids: dict[str, int], profile_to: Path | None
) -> list[Level]:
    levels = []
    await run_level(gateway, pids, 4, args.messages, 24)  # warm-up: first turns load lazily
    first_rasa = next(name for name in pids if name.startswith("rasa"))
    for index, concurrency in enumerate(args.levels):
        profiling = []
        if profile_to is not None and index == len(args.levels) - 1:
            profiling = [start_profile(pids[first_rasa], profile_to)]
            if "actions" in pids:
                profiling.append(start_profile(pids["actions"], actions_profile(profile_to)))
        level = await run_level(gateway, pids, concurrency, args.messages, args.min_turns)
        for process in profiling:
            if process is not None:
                stop_profile(process)
        print_level(level)
        levels.append(level)
    return levels


def actions_profile(rasa_profile: Path) -> Path:
    """Where the action server's profile goes beside Rasa's: ``actions.txt``,
    ``actions-<N>x.txt``."""
    return rasa_profile.with_name(rasa_profile.name.replace("rasa", "actions", 1))


def print_profile(title: str, collapsed: list[str]) -> dict:
    """Print and return the share of samples by component and the top functions."""
    top = top_frames(collapsed)
    profile = {**top, "components": components(collapsed)}
    print(f"\n{title}, % of samples by component:")
    for name, share in profile["components"][:15]:
        print(f"  {share:5.1f}  {name}")
    for kind in ("self", "inclusive"):
        print(f"\n{title}, {kind} % of samples:")
        for name, share in top[kind]:
            print(f"  {share:5.1f}  {name}")
    return profile


def rasa_cpu(level: Level) -> float:
    """Rasa's CPU per turn, over all its replicas."""
    return level.cpu_ms_per_turn.get("rasa (all)", level.cpu_ms_per_turn.get("rasa", 0.0))


def run_replicas(args: argparse.Namespace, replicas: int) -> dict:
    """The whole benchmark on a fresh stack with ``replicas`` Rasa servers: its summary."""
    profile_to = None
    if args.profile:
        name = "rasa.txt" if len(args.rasa) == 1 else f"rasa-{replicas}x.txt"
        profile_to = args.profile / name
    with ExitStack() as stack:
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-turns-")))
        print(f"\nstarting the stack, {replicas} Rasa (trained model, free ports) ...", flush=True)
        running = run_stack(stack, log_dir, GENEROUS_ENV, rasa_replicas=replicas)
        print(f"pids: {running.pids}", flush=True)
        levels = asyncio.run(bench(args, running.gateway, running.pids, profile_to))
    best = max(levels, key=lambda level: level.turns_per_second)
    errors = sum(sum(level.errors.values()) for level in levels)
    print(
        f"\nsaturation with {replicas} Rasa: {best.turns_per_second:.1f} turns/s at "
        f"C={best.concurrency} (Rasa {rasa_cpu(best):.1f} ms CPU/turn, all processes "
        f"{best.cpu_ms_per_turn.get('total', 0):.1f}); errors in all levels: {errors}"
    )
    result: dict = {"rasa_replicas": replicas, "levels": [level.summary() for level in levels]}
    at = f"profile at C={levels[-1].concurrency}"
    if profile_to is not None and profile_to.exists():
        collapsed = profile_to.read_text().splitlines()
        result["profile"] = print_profile(f"Rasa {at}", collapsed)
    if profile_to is not None and actions_profile(profile_to).exists():
        collapsed = actions_profile(profile_to).read_text().splitlines()
        result["actions_profile"] = print_profile(f"Action server {at}", collapsed)
    return result


def comparison(results: list[dict]) -> list[str]:
    """One line per replica count and level: turns/s, latencies, errors, CPU per turn."""
    lines = ["replicas  C  turns/s  p50/p95/p99 ms  errors  CPU ms/turn (rasa, all processes)"]
    for result in results:
        for level in result["levels"]:
            cpu = level["cpu_ms_per_turn"]
            rasa = cpu.get("rasa (all)", cpu.get("rasa", 0.0))
            lines.append(
                f"{result['rasa_replicas']:>8} {level['concurrency']:>3} "
                f"{level['turns_per_second']:>8.1f}  "
                f"{level['p50_ms']:.0f}/{level['p95_ms']:.0f}/{level['p99_ms']:.0f}  "
                f"{sum(level['errors'].values()):>6}  {rasa:.1f}, {cpu.get('total', 0.0):.1f}"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    numbers = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    parser.add_argument("--levels", type=numbers, default=[1, 10, 25, 50, 100])
    parser.add_argument("--messages", type=int, default=3, help="turns per conversation")
    parser.add_argument("--min-turns", type=int, default=150, help="turns per level at least")
    parser.add_argument(
        "--rasa", type=numbers, default=[1], help="Rasa replicas, e.g. 1,2: one run per count"
    )
    parser.add_argument("--profile", type=Path, default=None, help="py-spy output directory")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = [run_replicas(args, replicas) for replicas in args.rasa]
    if len(results) > 1:
        print("\n" + "\n".join(comparison(results)))
    if args.json:
        data = results[0] if len(results) == 1 else {"runs": results}
        args.json.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
