"""Benchmark of the web gateway at 50 concurrent conversations, in one run.

    python -m bench.web [--conversations 50] [--messages 4] [--rounds 2] [--relay-messages 20]
                        [--relay-interval 0.5] [--json out.json]

Starts its own stack on free ports: a fresh redis-server (AOF, ``appendfsync always`` as the
launcher runs it), the action server, Rasa with the trained model (``ensure_model()``) and the
gateway (``python -m bot.web``). Then:

1. **Bot-mode round trip.** ``--conversations`` customers at once each send ``2 x --messages``
   routine questions, one after the other, alternating (a) through the gateway
   (``POST /api/conversations/{id}/messages``) and (b) straight to Rasa's REST webhook with the
   same sender id, so both paths are measured under the same load at the same moments; for
   ``--rounds`` rounds of fresh conversations. Reported: p50/p95 per path and the **p50 ratio
   gateway / direct** (target <= 1.10).
2. **Agent-to-customer relay.** The same number of conversations are handed to agents (handoff
   opened as the action server opens it, claimed through the gateway's API by agents with their
   consoles' WebSockets open, 3 chats each). Each agent sends ``--relay-messages`` replies, one
   every ``--relay-interval`` seconds per conversation; latency runs from the agent's
   ``POST /api/tickets/{id}/messages`` to the event arriving on the customer's WebSocket.
   Reported: p50/p99 (**p99 target <= 50 ms**). Each agent starts at a random moment and its
   pauses are jittered (0.5-1.5 x the interval), so replies arrive spread out as they would
   from people, not in synchronized bursts of 50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

from bot.config import get_settings
from bot.handoff import ModeStore, QueuePort, TicketRequest
from bot.queue import open_queue
from bot.runtime.ports import free_port
from bot.runtime.redis_server import RedisServer
from bot.runtime.services import bot_services, gateway_service, running
from bot.runtime.training import ensure_model
from bot.web.limits import GENEROUS_ENV

ROUTINE = [
    "How do I activate my new card?",
    "What exchange rate do you use?",
    "How long does a bank transfer take?",
    "Can I use Apple Pay with my card?",
    "How do I top up by bank transfer?",
    "Which currencies can I hold?",
    "How do I change my PIN?",
    "Is there a fee for ATM withdrawals?",
]
TARGET_RATIO = 1.10
TARGET_RELAY_P99_MS = 50.0
NAMESPACE = "bench"
BENCH_TOPIC = "general"
AGENT_PASSWORD = "bench-agent-password"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# -- the stack -----------------------------------------------------------------------------


def start_stack(stack: ExitStack, log_dir: Path) -> tuple[str, str, str]:
    """Redis, action server, Rasa and gateway on free ports; returns their URLs."""
    redis = RedisServer(data_dir=log_dir / "redis", appendonly=True, appendfsync="always")
    stack.enter_context(redis)
    model = ensure_model(quiet=True)
    env = {
        "REDIS_URL": redis.url,
        "SUPPORT_QUEUE_NAMESPACE": NAMESPACE,
        "EVENTS_DB_URL": f"sqlite:///{log_dir / 'events.db'}",
    }
    bot = stack.enter_context(bot_services(model, log_dir, env))
    gateway_port = free_port()
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    gateway_env = {**env, **bot.client_env(), **GENEROUS_ENV}  # load from one address
    gateway = gateway_service("127.0.0.1", gateway_port, log_dir, gateway_env)
    stack.enter_context(running([gateway]))
    return redis.url, bot.rasa_url, gateway_url


# -- phase 1: bot-mode round trip ------------------------------------------------------------


async def timed_post(
    http: aiohttp.ClientSession, url: str, body: dict, headers: dict
) -> float | None:
    """Seconds until the answer, or None when it was an error (counted, not timed)."""
    started = time.perf_counter()
    async with http.post(url, json=body, headers=headers) as response:
        await response.read()
        if response.status != 200:
            return None
    return time.perf_counter() - started


async def conversation_round_trips(
    http: aiohttp.ClientSession, gateway: str, rasa: str, index: int, messages: int, think: float
) -> dict[str, list[float | None]]:
    """One conversation whose messages alternate between the two paths (same sender id), so
    both paths are measured under the same load at the same moments. The customer takes
    ``think`` seconds (jittered) before each message, as people do."""
    async with http.post(f"{gateway}/api/conversations") as response:
        created = await response.json()
    conversation_id = created["conversation_id"]
    via_gateway = f"{gateway}/api/conversations/{conversation_id}/messages"
    headers = {"Authorization": f"Bearer {created['token']}"}
    jitter = random.Random(index)
    timings: dict[str, list[float | None]] = {"gateway": [], "direct": []}
    for m in range(2 * messages):
        await asyncio.sleep(think * jitter.uniform(0.5, 1.5))
        text = ROUTINE[(index + m) % len(ROUTINE)]
        if (index + m) % 2 == 0:
            timings["gateway"].append(await timed_post(http, via_gateway, {"text": text}, headers))
        else:
            body = {"sender": conversation_id, "message": text}
            url = f"{rasa}/webhooks/rest/webhook"
            timings["direct"].append(await timed_post(http, url, body, {}))
    return timings


async def round_trips(
    http: aiohttp.ClientSession,
    gateway: str,
    rasa: str,
    args: argparse.Namespace,
    *,
    conversations: int | None = None,
    rounds: int | None = None,
) -> dict[str, list[float | None]]:
    results: dict[str, list[float | None]] = {"gateway": [], "direct": []}
    for round_index in range(rounds or args.rounds):
        runs = [
            conversation_round_trips(
                http, gateway, rasa, c + round_index, args.messages, args.think
            )
            for c in range(conversations or args.conversations)
        ]
        for timings in await asyncio.gather(*runs):
            for path, values in timings.items():
                results[path].extend(values)
        print(f"  round {round_index + 1}: done", flush=True)
    return results


# -- phase 2: agent-to-customer relay --------------------------------------------------------


async def make_agents(
    http: aiohttp.ClientSession, redis: Redis, gateway: str, count: int
) -> list[dict]:
    from bot.web.auth import Agent, AgentAccounts

    accounts = AgentAccounts(redis, NAMESPACE)
    agents = []
    for n in range(count):
        login = f"bench-agent-{n}@example.com"
        await accounts.create(
            Agent(login=login, name=f"Bench {n}", skills=[BENCH_TOPIC], capacity=3),
            AGENT_PASSWORD,
            replace=True,
        )
        async with http.post(
            f"{gateway}/api/agent/login", json={"login": login, "password": AGENT_PASSWORD}
        ) as r:
            token = (await r.json())["token"]
        headers = {"Authorization": f"Bearer {token}"}
        async with http.post(
            f"{gateway}/api/agent/presence", json={"online": True}, headers=headers
        ) as r:
            assert r.status == 200, await r.text()
        ws = await http.ws_connect(gateway.replace("http", "ws") + "/api/agent/ws")
        await ws.send_json({"type": "hello", "token": token})
        agents.append({"headers": headers, "ws": ws, "drain": asyncio.create_task(drain(ws))})
    return agents


async def drain(ws: aiohttp.ClientWebSocketResponse) -> None:
    async for _ in ws:
        pass


async def handed_conversation(http, redis, gateway: str, agent: dict) -> dict[str, Any]:
    async with http.post(f"{gateway}/api/conversations") as response:
        created = await response.json()
    conversation_id = created["conversation_id"]
    settings = get_settings().copy(update={"queue_namespace": NAMESPACE})
    modes = ModeStore(redis, QueuePort(open_queue(redis, settings)), NAMESPACE)
    state = await modes.request(
        TicketRequest(
            conversation_id=conversation_id,
            customer_id=conversation_id,
            reasons=["explicit_request"],
            priority=3,
            topic=BENCH_TOPIC,
        )
    )
    async with http.post(
        f"{gateway}/api/tickets/{state.ticket_id}/claim", headers=agent["headers"]
    ) as r:
        assert r.status == 200, await r.text()
    ws = await http.ws_connect(
        gateway.replace("http", "ws") + f"/api/conversations/{conversation_id}/ws"
    )
    await ws.send_json({"type": "hello", "token": created["token"], "after": "$"})
    return {"ticket_id": state.ticket_id, "ws": ws, "agent": agent}


async def relay(http, gateway: str, conversation: dict, count: int, interval: float) -> list[float]:
    ws = conversation["ws"]
    url = f"{gateway}/api/tickets/{conversation['ticket_id']}/messages"
    latencies = []
    jitter = random.Random(conversation["ticket_id"])
    await asyncio.sleep(jitter.uniform(0, interval))  # agents do not type in lockstep
    for n in range(count):
        marker = f"relay {uuid.uuid4().hex[:12]} #{n}"
        tick = time.perf_counter()
        sent = asyncio.create_task(
            http.post(url, json={"text": marker}, headers=conversation["agent"]["headers"])
        )
        while True:
            frame = await ws.receive_json(timeout=10)
            event = frame.get("event") or {}
            if frame.get("type") == "event" and event.get("text") == marker:
                latencies.append(time.perf_counter() - tick)
                break
        response = await sent
        if response.status != 200:
            raise RuntimeError(f"agent message refused: {response.status} {await response.text()}")
        response.release()
        pause = interval * jitter.uniform(0.5, 1.5)
        await asyncio.sleep(max(0.0, pause - (time.perf_counter() - tick)))
    return latencies


async def relay_phase(
    http, redis_url: str, gateway: str, conversations: int, count: int, interval: float
) -> list[float]:
    redis = Redis.from_url(redis_url, decode_responses=True)
    agents = await make_agents(http, redis, gateway, (conversations + 2) // 3)
    handed = []
    for n in range(conversations):
        handed.append(await handed_conversation(http, redis, gateway, agents[n // 3]))
    await asyncio.sleep(1.0)  # every socket past its replay
    results = await asyncio.gather(*(relay(http, gateway, c, count, interval) for c in handed))
    for item in handed:
        await item["ws"].close()
    for agent in agents:
        await agent["ws"].close()
        agent["drain"].cancel()
    await redis.close()
    return [value for timings in results for value in timings]


# -- report ----------------------------------------------------------------------------------


def report(
    raw_trips: dict[str, list[float | None]], relays: list[float], args: argparse.Namespace
) -> dict:
    trips = {path: [v for v in values if v is not None] for path, values in raw_trips.items()}
    errors = {path: sum(v is None for v in values) for path, values in raw_trips.items()}
    gateway_p50 = statistics.median(trips["gateway"]) * 1000
    direct_p50 = statistics.median(trips["direct"]) * 1000
    ratio = gateway_p50 / direct_p50
    relay_p50 = statistics.median(relays) * 1000
    relay_p99 = percentile(relays, 99) * 1000
    figures = {
        "conversations": args.conversations,
        "think_seconds": args.think,
        "round_trip_samples": {k: len(v) for k, v in trips.items()},
        "round_trip_errors": errors,
        "gateway_p50_ms": round(gateway_p50, 1),
        "gateway_p95_ms": round(percentile(trips["gateway"], 95) * 1000, 1),
        "direct_p50_ms": round(direct_p50, 1),
        "direct_p95_ms": round(percentile(trips["direct"], 95) * 1000, 1),
        "p50_ratio": round(ratio, 3),
        "relay_samples": len(relays),
        "relay_p50_ms": round(relay_p50, 1),
        "relay_p99_ms": round(relay_p99, 1),
        "relay_max_ms": round(max(relays) * 1000, 1),
    }
    ok_ratio = "ok" if ratio <= TARGET_RATIO else "MISSED"
    ok_relay = "ok" if relay_p99 <= TARGET_RELAY_P99_MS else "MISSED"
    print(f"\nweb gateway benchmark, {args.conversations} concurrent conversations")
    print(
        f"  bot-mode round trip p50: gateway {gateway_p50:.1f} ms, direct to Rasa {direct_p50:.1f} ms"
        f" (p95 {figures['gateway_p95_ms']} / {figures['direct_p95_ms']} ms,"
        f" {len(trips['gateway'])} + {len(trips['direct'])} messages,"
        f" errors {errors['gateway']} + {errors['direct']}; think time {args.think} s)"
    )
    print(f"  p50 ratio gateway/direct: {ratio:.3f}   target <= {TARGET_RATIO:.2f}   {ok_ratio}")
    print(
        f"  agent-to-customer relay: p50 {relay_p50:.1f} ms, p99 {relay_p99:.1f} ms"
        f" ({len(relays)} messages)   target p99 <= {TARGET_RELAY_P99_MS:.0f} ms   {ok_relay}"
    )
    return figures


async def measure(
    args: argparse.Namespace, redis_url: str, rasa_url: str, gateway_url: str
) -> dict:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=120)
    ) as http:
        print("warming up ...", flush=True)
        await round_trips(http, gateway_url, rasa_url, args, conversations=4, rounds=1)
        print(f"bot-mode round trips, {args.conversations} conversations at once ...", flush=True)
        trips = await round_trips(http, gateway_url, rasa_url, args)
        print(
            f"agent-to-customer relay, {args.conversations} conversations at once ...", flush=True
        )
        relays = await relay_phase(
            http,
            redis_url,
            gateway_url,
            args.conversations,
            args.relay_messages,
            args.relay_interval,
        )
    return report(trips, relays, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument(
        "--messages", type=int, default=4, help="bot-mode messages per conversation and round"
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--think", type=float, default=6.0, help="customer's mean pause before each message (s)"
    )
    parser.add_argument("--relay-messages", type=int, default=20)
    parser.add_argument("--relay-interval", type=float, default=0.5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with ExitStack() as stack:
        log_dir = get_settings().data_dir / "bench-web" / time.strftime("%Y%m%d-%H%M%S")
        log_dir.mkdir(parents=True, exist_ok=True)
        print(f"logs: {log_dir}", flush=True)
        print("starting Redis, action server, Rasa and the gateway ...", flush=True)
        redis_url, rasa_url, gateway_url = start_stack(stack, log_dir)
        figures = asyncio.run(measure(args, redis_url, rasa_url, gateway_url))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
