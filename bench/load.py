"""1,000 concurrent conversations with think time, through the gateway of the real stack.

    python -m bench.load [--customers 1000] [--ramp 60] [--think 5,15] [--messages 3,6]
                         [--duration 240] [--drain 60] [--buttons 0.3] [--ask-person 0.04]
                         [--no-flood] [--json out]

Starts its own stack like :mod:`bench.turns` (redis-server with AOF, action server, event sink,
Rasa with the trained model, gateway) with ``TRUSTED_PROXIES=127.0.0.1``: each simulated
customer sends its own ``X-Forwarded-For`` address, so the per-IP limits stay as configured.

Customers start evenly over ``--ramp`` seconds. Each opens a conversation and sends 3-6 messages
with 5-15 s of think time before each: a routine question, or (``--buttons``) the payload of a
button the bot's previous reply offered, and a few (``--ask-person``) ask for a person at their
second message. A 429 or 503 with ``Retry-After`` is not an error: the customer waits as told and
retries with the same ``client_id`` (counted apart). Anything else that is not a 200 (or no
answer within 120 s: a hang) is an error. The run is bounded: no new message after
``--duration`` seconds, and no retry after ``--drain`` more (such a message is counted as
unanswered at the end).

Run twice on the same stack: ``normal``, then ``flood`` with one more customer that sends as fast
as it can on 8 connections, ignoring ``Retry-After``. Printed per run, each beside its target:
errors, refusals answered with ``Retry-After``, bot-reply p50/p95/p99 (from the first send of a
message to its 200, retries included) and per attempt, turns/s, the gateway's RSS and Redis's
``used_memory`` at the end, CPU per turn; then the others' p99 with and without the flood.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis

from bench.simulate import ASK_PERSON
from bench.turns import cpu_seconds, run_stack
from bench.web import ROUTINE, percentile

FLOOD_CONNECTIONS = 8
HANG_SECONDS = 120
TARGET_FLOOD_RATIO = 1.20


def customer_address(index: int) -> str:
    """A distinct private address per customer (10.x.y.z)."""
    return f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"


@dataclass
class Run:
    """The figures of one run."""

    name: str
    customers: int
    seconds: float = 0.0
    turns: int = 0
    attempts: int = 0
    reply_ms: list[float] = field(default_factory=list, repr=False)
    attempt_ms: list[float] = field(default_factory=list, repr=False)
    errors: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)  # 429/503 with Retry-After, retried
    unanswered_at_end: int = 0  # still refused (Retry-After) when the run's time was over
    offered_per_second: float = 0.0
    buttons_pressed: int = 0
    asked_person: int = 0
    flood: dict[str, int] = field(default_factory=dict)
    gateway_rss_mib: float = 0.0
    redis_used_memory_mib: float = 0.0
    cpu_ms_per_turn: dict[str, float] = field(default_factory=dict)

    def count(self, table: dict[str, int], kind: str) -> None:
        table[kind] = table.get(kind, 0) + 1

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("reply_ms")
        data.pop("attempt_ms")
        data["turns_per_second"] = round(self.turns / self.seconds, 1) if self.seconds else 0.0
        for q in (50, 95, 99):
            data[f"reply_p{q}_ms"] = round(percentile(self.reply_ms, q), 1)
            data[f"attempt_p{q}_ms"] = round(percentile(self.attempt_ms, q), 1)
        data["cpu_ms_per_turn"] = {k: round(v, 1) for k, v in self.cpu_ms_per_turn.items()}
        return data


@dataclass
class Plan:
    think: tuple[float, float]
    messages: tuple[int, int]
    buttons: float
    ask_person: float
    stop_at: float  # perf_counter time: no new message after it
    give_up_at: float  # ... and no more retries of an unanswered one


async def send_turn(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], body: dict, run: Run, plan: Plan
) -> dict | None:
    """One message until it is answered: retried as told on 429/503 with Retry-After."""
    started = time.perf_counter()
    while True:
        attempt = time.perf_counter()
        run.attempts += 1
        try:
            async with http.post(url, json=body, headers=headers) as response:
                answer = await response.json(content_type=None)
                status, retry_after = response.status, response.headers.get("Retry-After")
        except asyncio.TimeoutError:
            run.count(run.errors, "hang (no answer in 120 s)")
            return None
        except (aiohttp.ClientError, ValueError) as error:
            run.count(run.errors, type(error).__name__)
            return None
        if status == 200:
            now = time.perf_counter()
            run.attempt_ms.append((now - attempt) * 1000)
            run.reply_ms.append((now - started) * 1000)
            run.turns += 1
            return answer
        code = (answer.get("error") or {}).get("code", "") if isinstance(answer, dict) else ""
        if status in (429, 503) and retry_after:
            run.count(run.refused, f"{status} {code}")
            if time.perf_counter() > plan.give_up_at:
                run.unanswered_at_end += 1
                return None
            await asyncio.sleep(float(retry_after))
            continue
        run.count(run.errors, f"{status} {code}")
        return None


async def customer(
    http: aiohttp.ClientSession, gateway: str, index: int, delay: float, plan: Plan, run: Run
) -> None:
    rng = random.Random(index)
    await asyncio.sleep(delay)
    headers = {"X-Forwarded-For": customer_address(index)}
    while True:  # a 429 on creation is retried as told
        try:
            async with http.post(f"{gateway}/api/conversations", headers=headers) as response:
                created = await response.json(content_type=None)
                status, retry_after = response.status, response.headers.get("Retry-After")
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
            run.count(run.errors, f"create {type(error).__name__}")
            return
        if status == 201:
            break
        if status in (429, 503) and retry_after:
            run.count(run.refused, f"create {status}")
            await asyncio.sleep(float(retry_after))
            continue
        run.count(run.errors, f"create {status}")
        return
    url = f"{gateway}/api/conversations/{created['conversation_id']}/messages"
    headers["Authorization"] = f"Bearer {created['token']}"
    asks = rng.random() < plan.ask_person
    offered: list[dict] = []
    for number in range(rng.randint(*plan.messages)):
        await asyncio.sleep(rng.uniform(*plan.think))
        if time.perf_counter() > plan.stop_at:
            return
        body: dict[str, Any] = {"client_id": uuid.uuid4().hex}
        if asks and number == 1:
            body["text"] = rng.choice(ASK_PERSON)
            run.asked_person += 1
        elif offered and rng.random() < plan.buttons:
            body["payload"] = rng.choice(offered)["payload"]
            run.buttons_pressed += 1
        else:
            body["text"] = rng.choice(ROUTINE)
        answer = await send_turn(http, url, headers, body, run, plan)
        if answer is None:
            return
        replies = [m for m in answer.get("messages", []) if m.get("from") == "bot"]
        offered = [b for m in replies for b in m.get("buttons", []) if b.get("payload")]


async def flooder(http: aiohttp.ClientSession, gateway: str, stop: asyncio.Event, run: Run) -> None:
    """One customer sending as fast as it can on several connections, ignoring Retry-After."""
    headers = {"X-Forwarded-For": "192.0.2.66"}
    async with http.post(f"{gateway}/api/conversations", headers=headers) as response:
        created = await response.json()
    url = f"{gateway}/api/conversations/{created['conversation_id']}/messages"
    headers["Authorization"] = f"Bearer {created['token']}"

    async def hammer() -> None:
        while not stop.is_set():
            try:
                async with http.post(url, json={"text": "hello??"}, headers=headers) as response:
                    await response.read()
                    run.count(run.flood, str(response.status))
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                run.count(run.flood, type(error).__name__)

    await asyncio.gather(*(hammer() for _ in range(FLOOD_CONNECTIONS)))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run_once(
    name: str, gateway: str, redis_url: str, pids: dict[str, int], args: argparse.Namespace
) -> Run:
    run = Run(name, args.customers)
    started = time.perf_counter()
    stop_at = started + args.duration
    plan = Plan(
        args.think, args.messages, args.buttons, args.ask_person, stop_at, stop_at + args.drain
    )
    run.offered_per_second = args.customers / (sum(args.think) / 2)
    before = {process: cpu_seconds(pid) for process, pid in pids.items()}
    timeout = aiohttp.ClientTimeout(total=HANG_SECONDS)
    stop = asyncio.Event()
    async with aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(limit=0)
    ) as http:
        flood = asyncio.create_task(flooder(http, gateway, stop, run)) if name == "flood" else None
        await asyncio.gather(
            *(
                customer(http, gateway, i, args.ramp * i / args.customers, plan, run)
                for i in range(args.customers)
            )
        )
        run.seconds = time.perf_counter() - started
        if flood is not None:
            stop.set()
            await flood
    for process, pid in pids.items():
        used = cpu_seconds(pid) - before[process]
        run.cpu_ms_per_turn[process] = 1000 * used / run.turns if run.turns else 0.0
    run.gateway_rss_mib = rss_mib(pids["gateway"])
    client = redis.Redis.from_url(redis_url)
    try:
        run.redis_used_memory_mib = int(client.info("memory")["used_memory"]) / 2**20
    finally:
        client.close()
    return run


def report(run: Run) -> None:
    s = run.summary()
    errors = sum(run.errors.values())
    refused = sum(run.refused.values())
    cpu = ", ".join(f"{name} {ms:.1f}" for name, ms in s["cpu_ms_per_turn"].items())
    print(
        f"\n== {run.name}: {run.customers} customers, {run.turns} bot turns in {run.seconds:.0f} s "
        f"({run.buttons_pressed} buttons pressed, {run.asked_person} asked for a person)\n"
        f"  errors                 {errors:>8}          target 0   {run.errors or ''}\n"
        f"  refused, Retry-After   {refused:>8}          (retried as told; not errors) "
        f"{run.refused or ''}\n"
        f"  bot reply p50/p95/p99  {s['reply_p50_ms']:>8.0f} / {s['reply_p95_ms']:.0f} / "
        f"{s['reply_p99_ms']:.0f} ms   target: p99 reported (retries included)\n"
        f"  per attempt p50/p95/p99{s['attempt_p50_ms']:>8.0f} / {s['attempt_p95_ms']:.0f} / "
        f"{s['attempt_p99_ms']:.0f} ms\n"
        f"  unanswered at the end  {run.unanswered_at_end:>8}          "
        f"(still refused when the run's time was over)\n"
        f"  turns/s                {s['turns_per_second']:>8.1f}          "
        f"offered ~{run.offered_per_second:.0f}/s once all customers are in\n"
        f"  gateway RSS            {run.gateway_rss_mib:>8.0f} MiB      reported\n"
        f"  Redis used_memory      {run.redis_used_memory_mib:>8.1f} MiB      reported (at the end)\n"
        f"  CPU ms/turn: {cpu}",
        flush=True,
    )
    if run.flood:
        print(f"  the flooder's answers by status: {run.flood}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    pair = lambda cast: lambda text: tuple(cast(x) for x in text.split(","))  # noqa: E731
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--ramp", type=float, default=60.0, help="seconds over which all start")
    parser.add_argument("--think", type=pair(float), default=(5.0, 15.0))
    parser.add_argument("--messages", type=pair(int), default=(3, 6))
    parser.add_argument("--buttons", type=float, default=0.3, help="share of turns on a button")
    parser.add_argument("--ask-person", type=float, default=0.04, help="share asking for a person")
    parser.add_argument("--duration", type=float, default=240.0, help="no new message after")
    parser.add_argument("--drain", type=float, default=60.0, help="retries after --duration")
    parser.add_argument("--no-flood", action="store_true", help="skip the run with a flooder")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    gateway_env = {"TRUSTED_PROXIES": "127.0.0.1"}
    with ExitStack() as stack:
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-load-")))
        print("starting the stack (trained model, free ports) ...", flush=True)
        running = run_stack(stack, log_dir, gateway_env)
        print(f"pids: {running.pids}", flush=True)
        runs = []
        for name in ["normal"] + ([] if args.no_flood else ["flood"]):
            run = asyncio.run(
                run_once(name, running.gateway, running.redis_url, running.pids, args)
            )
            report(run)
            runs.append(run)
    if len(runs) == 2:
        base, flooded = (percentile(run.reply_ms, 99) for run in runs)
        ratio = flooded / base if base else float("nan")
        verdict = "met" if ratio <= TARGET_FLOOD_RATIO else "NOT met"
        print(
            f"\nothers' bot-reply p99: {base:.0f} ms without the flood, {flooded:.0f} ms with it: "
            f"x{ratio:.2f} (target <= x{TARGET_FLOOD_RATIO:.2f}: {verdict})"
        )
    if args.json:
        args.json.write_text(json.dumps([run.summary() for run in runs], indent=2))


if __name__ == "__main__":
    main()
