"""Benchmark: slow actions do not stall other conversations (issue 11, item 5).

    python -m bench.slow_actions [--conversations 20] [--messages 10] [--rounds 2] [--json out.json]

Starts its own stack on free ports: redis-server, the action server serving the test-only
package ``tests.actions.slow_actions`` (the project's actions, with ``action_respond`` waiting
5 s in a Redis ``BLPOP`` for messages containing ``slowtest``: I/O, not CPU), Rasa with the
trained model and the gateway. Needs a checkout (the slow path lives in ``tests/``, never in the
product).

``--conversations`` customers send ``--messages`` routine questions each through the gateway,
one after the other. Every 10th turn of the global schedule is sent instead, in the background
(not awaited by its customer), in a fresh conversation, so 10 % of all turns are "marked".
Two phases with the same schedule, alternated for ``--rounds``:

* **baseline**: marked turns are ordinary questions (fast);
* **with slow**: marked turns carry the marker and wait 5 s on I/O in the action server.

Printed: p50 / p95 / max of the other (unmarked) turns' gateway round trips in each phase, the
p95 ratio (target <= 1.20), the marked turns' round trips, the errors and the turns answered
without a bot reply (Rasa could not run the action: counted, not timed). The figures are from a
2-core machine shared with other work: run it on a quiet machine for numbers to quote.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bot.config import get_settings
from bot.runtime import services
from bot.runtime.internal_secrets import InternalSecrets
from bot.runtime.ports import free_port
from bot.runtime.redis_server import RedisServer
from bot.runtime.training import ensure_model
from bot.web.limits import GENEROUS_ENV

SLOW_ACTIONS = "tests.actions.slow_actions"  # the test-only action package
SLOW_MARKER = "slowtest"  # = tests.actions.slow_actions.SLOW_MARKER (checked by its test)
SLOW_SECONDS = 5.0
EVERY = 10  # one turn in ten is marked
NAMESPACE = "benchslow"
QUESTIONS = [
    "How do I activate my new card?",
    "What exchange rate do you use?",
    "How long does a bank transfer take?",
    "Can I use Apple Pay with my card?",
    "How do I change my PIN?",
    "Is there a fee for ATM withdrawals?",
]


def schedule(conversations: int, messages: int) -> list[list[bool]]:
    """Per customer, per turn: is it marked? One turn in ``EVERY`` of each customer's, at a
    different place for each customer (turn t of customer c when ``(t + c) % EVERY`` is
    ``EVERY - 1``), so the marked turns are spread over customers and time."""
    return [[(t + c) % EVERY == EVERY - 1 for t in range(messages)] for c in range(conversations)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


class NoReply(Exception):
    """The gateway answered, but without a reply from the bot."""


@dataclass
class Phase:
    others: list[float] = field(default_factory=list)
    marked: list[float] = field(default_factory=list)
    errors: int = 0  # error statuses and failed requests
    no_reply: int = 0  # 200 without a bot message (Rasa could not run the action)


def start_stack(stack: ExitStack, log_dir: Path) -> str:
    """Redis, the slow action server, Rasa and the gateway; returns the gateway's URL."""
    redis = stack.enter_context(RedisServer(data_dir=log_dir / "redis"))
    model = ensure_model(quiet=True)
    secrets = InternalSecrets.generate()
    env = {
        "REDIS_URL": redis.url,
        "SUPPORT_QUEUE_NAMESPACE": NAMESPACE,
        "EVENTS_DB_URL": f"sqlite:///{log_dir / 'events.db'}",
        "SLOW_ACTION_WAIT_SECONDS": str(SLOW_SECONDS),
    }
    actions_port, rasa_port, gateway_port = free_port(), free_port(), free_port()
    action_url = f"http://127.0.0.1:{actions_port}/webhook"
    actions = services.action_server(actions_port, log_dir, env, secrets=secrets)
    actions.command[actions.command.index("actions")] = SLOW_ACTIONS
    rasa = services.rasa_server(rasa_port, model, action_url, log_dir, env, secrets=secrets)
    gateway_env = {
        **env,
        **GENEROUS_ENV,  # all customers come from one address
        "RASA_URL": f"http://127.0.0.1:{rasa_port}",
        "RASA_AUTH_TOKEN": secrets.rasa_auth_token,
        "ACTION_SERVER_URL": action_url,
    }
    gateway = services.gateway_service("127.0.0.1", gateway_port, log_dir, gateway_env)
    stack.enter_context(services.running([actions, rasa, gateway]))
    return f"http://127.0.0.1:{gateway_port}"


async def send(http: aiohttp.ClientSession, gateway: str, conversation, text: str) -> float:
    """One customer turn through the gateway; its round trip. Raises :class:`NoReply` when the
    gateway answered 200 without a bot message (Rasa failed to run the action), and
    ``RuntimeError`` on an error status."""
    conversation_id, headers = conversation
    url = f"{gateway}/api/conversations/{conversation_id}/messages"
    started = time.perf_counter()
    async with http.post(url, json={"text": text}, headers=headers) as response:
        if response.status != 200:
            await response.read()
            raise RuntimeError(f"status {response.status}")
        body = await response.json()
    if not any(m.get("from") == "bot" for m in body.get("messages", [])):
        raise NoReply()
    return time.perf_counter() - started


async def new_conversation(http: aiohttp.ClientSession, gateway: str):
    async with http.post(f"{gateway}/api/conversations") as response:
        created = await response.json()
    return created["conversation_id"], {"Authorization": f"Bearer {created['token']}"}


async def run_phase(
    http: aiohttp.ClientSession, gateway: str, plan: list[list[bool]], slow: bool
) -> Phase:
    phase = Phase()
    background: list[asyncio.Task] = []

    async def marked(text: str) -> None:
        try:
            conversation = await new_conversation(http, gateway)
            phase.marked.append(await send(http, gateway, conversation, text))
        except NoReply:
            phase.no_reply += 1
        except Exception:
            phase.errors += 1

    async def customer(index: int, turns: list[bool]) -> None:
        conversation = await new_conversation(http, gateway)
        for t, is_marked in enumerate(turns):
            question = QUESTIONS[(index + t) % len(QUESTIONS)]
            if is_marked:
                text = f"{question} {SLOW_MARKER}" if slow else question
                background.append(asyncio.create_task(marked(text)))
                continue
            try:
                phase.others.append(await send(http, gateway, conversation, question))
            except NoReply:
                phase.no_reply += 1
            except Exception:
                phase.errors += 1

    await asyncio.gather(*(customer(i, turns) for i, turns in enumerate(plan)))
    await asyncio.gather(*background)
    return phase


def summary(phase: Phase) -> dict[str, float]:
    return {
        "turns": len(phase.others),
        "p50": statistics.median(phase.others) if phase.others else float("nan"),
        "p95": percentile(phase.others, 95),
        "max": max(phase.others, default=float("nan")),
        "marked_turns": len(phase.marked),
        "marked_p50": statistics.median(phase.marked) if phase.marked else float("nan"),
        "errors": phase.errors,
        "no_reply": phase.no_reply,
    }


async def measure(args: argparse.Namespace, gateway: str) -> dict[str, dict[str, float]]:
    plan = schedule(args.conversations, args.messages)
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        print("warming up ...", flush=True)
        await run_phase(http, gateway, schedule(args.conversations, 2), slow=False)
        totals = {"baseline": Phase(), "with slow": Phase()}
        for round_ in range(args.rounds):
            for name, slow in (("baseline", False), ("with slow", True)):
                phase = await run_phase(http, gateway, plan, slow)
                print(f"round {round_ + 1} {name}: {summary(phase)}", flush=True)
                totals[name].others += phase.others
                totals[name].marked += phase.marked
                totals[name].errors += phase.errors
                totals[name].no_reply += phase.no_reply
    figures = {name: summary(phase) for name, phase in totals.items()}
    base, slow = figures["baseline"], figures["with slow"]
    print()
    print(
        f"{'phase':<10} {'turns':>6} {'p50 s':>7} {'p95 s':>7} {'max s':>7} "
        f"{'marked':>7} {'marked p50 s':>13} {'errors':>7} {'no reply':>9}"
    )
    for name, row in figures.items():
        print(
            f"{name:<10} {row['turns']:>6} {row['p50']:>7.3f} {row['p95']:>7.3f} "
            f"{row['max']:>7.3f} {row['marked_turns']:>7} {row['marked_p50']:>13.3f} "
            f"{row['errors']:>7} {row['no_reply']:>9}"
        )
    ratio = slow["p95"] / base["p95"]
    print(f"\nother turns' p95 with slow / baseline: {ratio:.2f} (target <= 1.20)")
    return {**figures, "p95_ratio": {"value": ratio}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with ExitStack() as stack:
        log_dir = get_settings().data_dir / "bench-slow-actions" / time.strftime("%Y%m%d-%H%M%S")
        log_dir.mkdir(parents=True, exist_ok=True)
        print(f"logs: {log_dir}", flush=True)
        print("starting Redis, the slow action server, Rasa and the gateway ...", flush=True)
        gateway = start_stack(stack, log_dir)
        figures = asyncio.run(measure(args, gateway))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
