"""Fault benchmark: kill -9 one process of the supervised stack under load, and count the damage.

    python -m bench.faults [--conversations 100] [--rasa 2] [--actions 2] [--gateways 2]
                           [--faults rasa,actions,gateway,redis] [--phase 40]

Starts the launcher (``python -m bot.runtime.launcher --rasa 2 --actions 2 --gateways 2``) on
free ports in a temporary data directory (HAProxy in front of the gateways, the launcher's own
Redis with AOF ``appendfsync always``). Then, for each fault in turn, ``--conversations``
customers talk to the stack through HAProxy at once: each conversation starts with an unclear
message (a failed turn, counted in the ``escalation_state`` slot), then sends routine questions
and presses buttons the bot offered (never "Talk to a person"), every message with a unique
``client_id``; a 5xx or a connection error is retried with the SAME ``client_id`` (honouring
``Retry-After``) until a deadline. A few seconds into the load one process is killed with
SIGKILL (one Rasa replica, one action server, one gateway, or Redis); the supervisor restarts it.

Per fault it reports:

* recovery s: from the kill until the supervisor reports the service healthy again and
  ``/healthz`` through HAProxy says the bot is available (``first ok turn s``: until the first
  turn sent after the kill was answered with a 2xx);
* lost: messages the gateway acknowledged (2xx) that are absent from the conversation's stream;
* duplicated: a ``client_id`` that appears twice in the stream;
* rasa reruns: a ``client_id`` that reached Rasa twice (the gateway sends it with the message as
  Rasa metadata, so each user event in Rasa's tracker names its message), i.e. a bot turn run
  twice for one customer message;
* unrecorded: turns Rasa ran whose message is not in the stream (the gateway died after Rasa
  answered and before it appended the turn; the customer's retry gets 409 ``turn_outcome_unknown``
  and is asked to send it again; the message was never acknowledged, so it is not "lost");
* failed: requests without a 2xx after the retries;
* not continued: conversations whose next turn after the fault got no bot reply;
* slots lost: conversations whose ``failed_total`` went back across the fault, or whose next
  unclear message did not count as one more failed turn.

Leaves nothing running: the launcher is stopped with SIGTERM (it stops its children).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import redis

from bench.web import ROUTINE
from bot.config import PROJECT_ROOT
from bot.runtime.ports import free_port, free_run
from bot.web.limits import GENEROUS_ENV

UNCLEAR = ("blorp", "flarp zing", "zorp quib", "snarf wibble")
FAULTS = ("rasa", "actions", "gateway", "redis")
SERVICE_NAME = {"rasa": "rasa 1", "actions": "action server 1", "gateway": "gateway 1"}
RETRY_DEADLINE = 150.0  # seconds one message is retried before it counts as failed


# ---------------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    """A launcher started on free ports in `data_dir`."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    ports: dict[str, int]
    replicas: dict[str, int]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['GATEWAY_PORT']}"

    @property
    def rasa_urls(self) -> list[str]:
        base = self.ports["RASA_PORT"]
        return [f"http://127.0.0.1:{base + i}" for i in range(self.replicas["rasa"])]

    def secret(self, name: str) -> str:
        return (self.data_dir / "secrets" / name).read_text().strip()

    def log(self) -> str:
        path = self.data_dir / "logs" / "launcher.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def port_of(self, fault: str) -> int:
        """The port of the process a fault kills: the first of its kind."""
        if fault == "redis":
            return self.ports["SUPPORT_REDIS_PORT"]
        if fault == "rasa":
            return self.ports["RASA_PORT"]
        if fault == "actions":
            return self.ports["ACTION_SERVER_PORT"]
        if self.replicas["gateways"] > 1:
            return self.ports["GATEWAY_PORT"] + 1  # behind HAProxy
        return self.ports["GATEWAY_PORT"]

    def redis_pid(self) -> int:
        client = redis.Redis(
            port=self.ports["SUPPORT_REDIS_PORT"],
            password=self.secret("support_redis_password"),
            socket_timeout=10,
        )
        with client:
            return int(client.info("server")["process_id"])

    def kill(self, fault: str) -> int:
        """SIGKILL the process of `fault` (a service: its whole process group); its pid."""
        if fault == "redis":
            pid = self.redis_pid()
            os.kill(pid, signal.SIGKILL)
            return pid
        pid = pid_listening_on(self.port_of(fault))
        if pid is None:
            raise RuntimeError(f"nothing listens on the port of {fault}")
        os.killpg(os.getpgid(pid), signal.SIGKILL)
        return pid


def pid_listening_on(port: int) -> int | None:
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return conn.pid
    return None


@contextmanager
def launched(
    data_dir: Path, rasa: int = 2, actions: int = 2, gateways: int = 2, timeout: float = 900
) -> Iterator[Stack]:
    """The launcher with these replica counts, on free ports; stopped (SIGTERM) on exit."""
    ports = {
        "SUPPORT_REDIS_PORT": free_port(),
        "ACTION_SERVER_PORT": free_run(actions),
        "EVENT_SINK_PORT": free_port(),
        "RASA_PORT": free_run(rasa),
        "GATEWAY_PORT": free_run(gateways + 1 if gateways > 1 else 1),
    }
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env |= {key: str(port) for key, port in ports.items()}
    env |= GENEROUS_ENV
    env |= {
        "SUPPORT_DATA_DIR": str(data_dir),
        "RASA_URL": f"http://127.0.0.1:{ports['RASA_PORT']}",
        "EVENTS_DB_URL": f"sqlite:///{data_dir / 'events.db'}",
        # the gateways probe the first action server's /health (the launcher passes them
        # ACTION_SERVER_PORT but not the URL, which would default to port 5055)
        "ACTION_SERVER_URL": f"http://127.0.0.1:{ports['ACTION_SERVER_PORT']}/webhook",
        # a killed service comes back after a short backoff; four faults never make it give up
        "SUPERVISOR_MAX_CRASHES": "20",
        "SUPERVISOR_BACKOFF_INITIAL_SECONDS": "0.5",
    }
    log = open(data_dir / "launcher.out", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot.runtime.launcher",
            *("--rasa", str(rasa), "--actions", str(actions), "--gateways", str(gateways)),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    stack = Stack(
        process, data_dir, ports, {"rasa": rasa, "actions": actions, "gateways": gateways}
    )
    try:
        deadline = time.monotonic() + timeout
        out = data_dir / "launcher.out"
        while "The support stack is running" not in out.read_text(errors="replace"):
            if process.poll() is not None:
                raise RuntimeError(f"the launcher exited:\n{out.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the stack did not start:\n{out.read_text(errors='replace')}")
            time.sleep(0.5)
        yield stack
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=180)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


# ---------------------------------------------------------------------------------- customers


@dataclass
class Customer:
    """One conversation and what happened to each of its messages."""

    index: int
    conversation_id: str = ""
    token: str = ""
    acked: list[str] = field(default_factory=list)  # client ids answered with a 2xx
    failed: int = 0
    offered: list[str] = field(default_factory=list)  # payloads of the bot's last buttons
    turn: int = 0
    last_refusal: str = ""  # the status (and code) of the last non-2xx answer

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def start_conversation(http: aiohttp.ClientSession, base: str, customer: Customer) -> None:
    deadline = time.monotonic() + RETRY_DEADLINE
    while True:
        try:
            async with http.post(f"{base}/api/conversations", json={}) as response:
                if response.status == 201:
                    body = await response.json()
                    customer.conversation_id, customer.token = (
                        body["conversation_id"],
                        body["token"],
                    )
                    return
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("could not start a conversation")
        await asyncio.sleep(1)


async def send(
    http: aiohttp.ClientSession,
    base: str,
    customer: Customer,
    text: str | None = None,
    payload: str | None = None,
) -> dict[str, Any] | None:
    """One message, retried with the same client id on 5xx and connection errors; the answer
    (None: no 2xx before the deadline, or a 4xx, counted as failed)."""
    client_id = f"c{customer.index}-{uuid.uuid4().hex[:12]}"
    body: dict[str, Any] = {"client_id": client_id}
    body |= {"text": text} if text is not None else {"payload": payload}
    url = f"{base}/api/conversations/{customer.conversation_id}/messages"
    deadline = time.monotonic() + RETRY_DEADLINE
    while True:
        pause = 1.0
        try:
            async with http.post(url, json=body, headers=customer.headers()) as response:
                if 200 <= response.status < 300:
                    answer = await response.json()
                    customer.acked.append(client_id)
                    customer.turn += 1
                    bots = [m for m in answer["messages"] if m.get("from") == "bot"]
                    if bots:
                        customer.offered = [
                            b["payload"] for b in bots[-1].get("buttons") or [] if b.get("payload")
                        ]
                    return answer
                customer.last_refusal = f"{response.status} {await _error_code(response)}"
                if response.status < 500 and response.status != 429:
                    customer.failed += 1
                    return None
                pause = float(response.headers.get("Retry-After", "1"))
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        if time.monotonic() + pause > deadline:
            customer.failed += 1
            return None
        await asyncio.sleep(min(pause, 5.0))


async def _error_code(response: aiohttp.ClientResponse) -> str:
    try:
        error = (await response.json()).get("error")
        return str(error.get("code", "")) if isinstance(error, dict) else str(error or "")
    except (aiohttp.ClientError, ValueError):
        return ""


def why_no_reply(answer: dict[str, Any] | None, customer: Customer) -> str:
    """What a turn without a bot reply got instead: its last refusal, or the kinds of message."""
    if answer is None:
        return f"no 2xx, last: {customer.last_refusal or 'connection error'}"
    kinds = sorted({f"{m.get('from')}:{m.get('code', '')}" for m in answer["messages"]})
    return "2xx with " + ", ".join(kinds)


def bot_replied(answer: dict[str, Any] | None) -> bool:
    return answer is not None and any(m.get("from") == "bot" for m in answer["messages"])


async def next_turn(http: aiohttp.ClientSession, base: str, customer: Customer) -> dict | None:
    """A routine question, or a button the bot offered (never the request for a person)."""
    buttons = [p for p in customer.offered if p != "/request_human"]
    if buttons and customer.turn % 3 == 2:
        return await send(http, base, customer, payload=buttons[0])
    return await send(http, base, customer, text=ROUTINE[(customer.index + customer.turn) % 8])


async def escalation_state(
    http: aiohttp.ClientSession, stack: Stack, conversation_id: str
) -> dict[str, Any]:
    """The conversation's escalation slot, from Rasa's tracker (any replica: the store is
    shared), retried while Rasa or Redis comes back."""
    token = stack.secret("rasa_auth_token")
    deadline = time.monotonic() + RETRY_DEADLINE
    while True:
        for url in stack.rasa_urls:
            try:
                async with http.get(
                    f"{url}/conversations/{conversation_id}/tracker", params={"token": token}
                ) as response:
                    if response.status == 200:
                        tracker = await response.json()
                        return {
                            **(tracker["slots"].get("escalation_state") or {}),
                            "user_turns": sum(
                                1 for e in tracker["events"] if e.get("event") == "user"
                            ),
                            # the message id the gateway sends with each turn (Rasa metadata)
                            "rasa_client_ids": Counter(
                                (e.get("metadata") or {}).get("client_id")
                                for e in tracker["events"]
                                if e.get("event") == "user"
                                and (e.get("metadata") or {}).get("client_id")
                            ),
                        }
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"no tracker for {conversation_id}")
        await asyncio.sleep(1)


# ---------------------------------------------------------------------------------- one fault


@dataclass
class Outcome:
    fault: str
    recovery_s: float | None
    first_ok_turn_s: float | None
    acknowledged: int
    lost: int
    duplicated: int  # a client id twice in the conversation's stream
    rasa_reruns: int  # a client id twice among the user events of Rasa's tracker
    unrecorded: int  # a client id in Rasa's tracker that the stream lacks (never acknowledged)
    failed: int
    not_continued: int
    slots_lost: int
    conversations: int
    # what the turns without a bot reply got instead, and the slot values of "slots lost"
    why_not_continued: Counter = field(default_factory=Counter)


async def _healthy(http: aiohttp.ClientSession, base: str) -> bool:
    try:
        async with http.get(f"{base}/healthz") as response:
            return response.status == 200 and (await response.json()).get("bot_available") is True
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return False


async def run_fault(
    stack: Stack,
    fault: str | None,
    conversations: int,
    phase: float = 40.0,
    kill_after: float = 5.0,
    think: float = 0.5,
    recovery_bound: float = 180.0,
) -> Outcome:
    """`conversations` customers under load; `fault` killed `kill_after` s in (None: no fault)."""
    base = stack.url
    timeout = aiohttp.ClientTimeout(total=90)
    connector = aiohttp.TCPConnector(limit=conversations * 2)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        customers = [Customer(i) for i in range(conversations)]
        await asyncio.gather(*(start_conversation(http, base, c) for c in customers))
        # a failed turn first, so each conversation has a slot value to carry across the fault
        await asyncio.gather(*(send(http, base, c, text=UNCLEAR[0]) for c in customers))
        before = await asyncio.gather(
            *(escalation_state(http, stack, c.conversation_id) for c in customers)
        )

        stop = asyncio.Event()
        killed_at: list[float] = []
        first_ok: list[float] = []

        async def load(customer: Customer) -> None:
            while not stop.is_set():
                sent = time.monotonic()
                answer = await next_turn(http, base, customer)
                if answer is not None and killed_at and sent > killed_at[0] and not first_ok:
                    first_ok.append(time.monotonic() - killed_at[0])
                await asyncio.sleep(think)

        tasks = [asyncio.ensure_future(load(c)) for c in customers]
        recovery: float | None = None
        phase_start = time.monotonic()
        try:
            await asyncio.sleep(kill_after)
            if fault is not None:
                name = SERVICE_NAME.get(fault, "redis")
                marker = f"{name} is healthy again"
                seen = stack.log().count(marker)
                killed_at.append(time.monotonic())
                stack.kill(fault)
                while time.monotonic() - killed_at[0] < recovery_bound:
                    back = stack.log().count(marker) > seen
                    if back and await _healthy(http, base):
                        recovery = time.monotonic() - killed_at[0]
                        break
                    await asyncio.sleep(0.2)
            await asyncio.sleep(max(0.0, phase - (time.monotonic() - phase_start)))
        finally:
            stop.set()
            await asyncio.gather(*tasks)

        # every conversation continues: its next unclear message is answered by the bot and
        # counts as one more failed turn on top of the ones before the fault
        middle = await asyncio.gather(
            *(escalation_state(http, stack, c.conversation_id) for c in customers)
        )
        answers = await asyncio.gather(*(send(http, base, c, text=UNCLEAR[1]) for c in customers))
        after = await asyncio.gather(
            *(escalation_state(http, stack, c.conversation_id) for c in customers)
        )
        not_continued = sum(1 for a in answers if not bot_replied(a))
        why = Counter(
            why_no_reply(a, c)
            for a, c in zip(answers, customers, strict=True)
            if not bot_replied(a)
        )
        lost_slots = Counter(
            "failed_total before/middle/after "
            f"{b.get('failed_total', 0)}/{m.get('failed_total', 0)}/{a.get('failed_total', 0)}"
            for b, m, a in zip(before, middle, after, strict=True)
            if m.get("failed_total", 0) < b.get("failed_total", 0)
            or a.get("failed_total", 0) != m.get("failed_total", 0) + 1
        )
        slots_lost = sum(lost_slots.values())
        why.update(f"(slots) {detail}" for detail in lost_slots.elements())
        lost = duplicated = reruns = unrecorded = 0
        for customer, tracker in zip(customers, after, strict=True):
            async with http.get(
                f"{base}/api/conversations/{customer.conversation_id}",
                headers=customer.headers(),
            ) as response:
                view = await response.json()
            ids = Counter(
                m.get("client_id")
                for m in view["messages"]
                if m.get("from") == "customer" and m.get("client_id")
            )
            lost += sum(1 for cid in customer.acked if cid not in ids)
            duplicated += sum(n - 1 for n in ids.values() if n > 1)
            reruns += sum(n - 1 for n in tracker["rasa_client_ids"].values() if n > 1)
            unrecorded += sum(1 for cid in tracker["rasa_client_ids"] if cid not in ids)
        return Outcome(
            fault=fault or "none",
            recovery_s=recovery,
            first_ok_turn_s=first_ok[0] if first_ok else None,
            acknowledged=sum(len(c.acked) for c in customers),
            lost=lost,
            duplicated=duplicated,
            rasa_reruns=reruns,
            unrecorded=unrecorded,
            failed=sum(c.failed for c in customers),
            not_continued=not_continued,
            slots_lost=slots_lost,
            conversations=conversations,
            why_not_continued=why,
        )


# ---------------------------------------------------------------------------------- report


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(outcomes: list[Outcome]) -> str:
    head = (
        f"{'fault':<9}{'recovery s':>11}{'first ok s':>11}{'acked':>7}{'lost':>6}"
        f"{'duplicated':>11}{'rasa reruns':>12}{'unrecorded':>11}{'failed':>7}"
        f"{'not continued':>14}{'slots lost':>11}"
    )
    rows = [
        f"{o.fault:<9}{_seconds(o.recovery_s):>11}{_seconds(o.first_ok_turn_s):>11}"
        f"{o.acknowledged:>7}{o.lost:>6}{o.duplicated:>11}{o.rasa_reruns:>12}{o.unrecorded:>11}"
        f"{o.failed:>7}{o.not_continued:>14}{o.slots_lost:>11}"
        for o in outcomes
    ]
    return "\n".join([head, *rows])


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--rasa", type=int, default=2)
    parser.add_argument("--actions", type=int, default=2)
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--phase", type=float, default=40.0, help="seconds of load per fault")
    args = parser.parse_args()
    faults = [f for f in args.faults.split(",") if f]
    unknown = set(faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    outcomes = []
    signal.signal(signal.SIGTERM, _interrupt)  # a SIGTERM stops the launcher too
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        print(
            f"starting the launcher: --rasa {args.rasa} --actions {args.actions} "
            f"--gateways {args.gateways} in {tmp}",
            flush=True,
        )
        with launched(Path(tmp), args.rasa, args.actions, args.gateways) as stack:
            for fault in faults:
                print(
                    f"fault: kill -9 {fault} under {args.conversations} conversations", flush=True
                )
                outcome = asyncio.run(run_fault(stack, fault, args.conversations, args.phase))
                outcomes.append(outcome)
                print(table([outcome]).splitlines()[1], flush=True)
                for reason, count in outcome.why_not_continued.most_common():
                    print(f"    {count} x {reason}", flush=True)
    print()
    print(table(outcomes))


if __name__ == "__main__":
    main()
