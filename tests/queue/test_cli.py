"""The operator CLI, run as operators run it (a subprocess) against a real Redis."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from bot.queue import HandoffQueue, TicketState
from bot.runtime.redis_server import RedisServer

from .helpers import enqueue


async def run(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bot.queue.cli", *args]
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60
    )


async def cli(server: RedisServer, *args: str) -> subprocess.CompletedProcess[str]:
    return await run("--redis-url", server.url, "--namespace", "test", *args)


async def test_cli_list_show_requeue_close(queue: HandoffQueue, redis_server: RedisServer) -> None:
    await queue.agent_online("ann", ["cards"], 1)
    a = await enqueue(queue, "conv-a", priority=8)
    b = await enqueue(queue, "conv-b", priority=3)
    await queue.send_message(a.id, "agent", "ann", "Hello, Ann here", "m1")

    listed = await cli(redis_server, "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "STATE", "PRIO", "TOPIC"]
    assert any(line.startswith(a.id) and "assigned" in line and "ann" in line for line in lines)
    assert any(line.startswith(b.id) and "queued" in line for line in lines)
    assert "2 ticket(s)" in listed.stdout

    shown = await cli(redis_server, "show", a.id)
    assert shown.returncode == 0, shown.stderr
    for text in (
        "conv-a",
        "card declined twice",
        "card_declined 0.42",
        "-0.40, -0.80",
        "history:",
        "queued",
        "assigned",
        "first_response",
        "Hello, Ann here",
    ):
        assert text in shown.stdout, text

    requeued = await cli(redis_server, "requeue", a.id)
    assert requeued.returncode == 0, requeued.stderr
    assert f"requeued {a.id} (taken from ann)" in requeued.stdout
    # ann is free again and pulls b; a waits at the front for someone else
    assert (await queue.get(a.id)).state == TicketState.QUEUED
    assert (await queue.get(b.id)).agent_id == "ann"

    closed = await cli(redis_server, "close", a.id, "--disposition", "duplicate request")
    assert (
        closed.returncode == 0 and f"closed {a.id} as resolved (duplicate request)" in closed.stdout
    )
    assert (await queue.get(a.id)).state == TicketState.RESOLVED

    agents = await cli(redis_server, "agents")
    assert "ann" in agents.stdout and "1/1" in agents.stdout
    assert "open: 1" in (await cli(redis_server, "stats")).stdout
    assert "resolved" in (await cli(redis_server, "list", "--state", "resolved")).stdout


async def test_cli_errors(queue: HandoffQueue, redis_server: RedisServer) -> None:
    t = await enqueue(queue, "conv-a")
    missing = await cli(redis_server, "show", "T999")
    assert missing.returncode == 1 and "error: ticket T999 does not exist" in missing.stderr
    wrong = await cli(redis_server, "requeue", t.id)
    assert wrong.returncode == 1 and "only an assigned ticket can be requeued" in wrong.stderr
    usage = await cli(redis_server, "explode")
    assert usage.returncode == 2
    down = await run("--redis-url", "redis://127.0.0.1:1/0", "list")
    assert down.returncode == 3 and "cannot reach Redis" in down.stderr
