"""What a flood alone costs: bench.load's flooder against one gateway and its Redis.

    python -m bench.flood [--seconds 30] [--connections 8]

Starts a redis-server and a gateway (no Rasa: the flooder's first messages are stored and
answered without the bot, the rest refused with 429), then one customer sends as fast as it can
on ``--connections`` connections, ignoring ``Retry-After``. Prints the answers per second by
status and the CPU the gateway and Redis spent per second of flood. The client runs on the same
machine, so on two cores its own CPU bounds the rate the gateway is asked to refuse.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.turns import cpu_seconds
from bot.runtime import services
from bot.runtime.ports import free_port
from bot.runtime.redis_server import RedisServer


async def flood(url: str, seconds: float, connections: int) -> dict[int, int]:
    counts: dict[int, int] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        headers = {"X-Forwarded-For": "192.0.2.66"}
        async with http.post(f"{url}/api/conversations", headers=headers) as response:
            created = await response.json()
        messages = f"{url}/api/conversations/{created['conversation_id']}/messages"
        headers["Authorization"] = f"Bearer {created['token']}"
        stop = time.monotonic() + seconds

        async def hammer() -> None:
            while time.monotonic() < stop:
                async with http.post(messages, json={"text": "hello??"}, headers=headers) as r:
                    await r.read()
                    counts[r.status] = counts.get(r.status, 0) + 1

        await asyncio.gather(*(hammer() for _ in range(connections)))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmp:
        redis = RedisServer(data_dir=Path(tmp) / "redis", appendonly=True, appendfsync="always")
        with redis:
            port = free_port()
            env = {
                "REDIS_URL": redis.url,
                "RASA_URL": f"http://127.0.0.1:{free_port()}",  # nobody: no bot
                "SUPPORT_QUEUE_NAMESPACE": "benchflood",
                "GATEWAY_PORT": str(port),
                "TRUSTED_PROXIES": "127.0.0.1",
            }
            gateway = services.gateway_service("127.0.0.1", port, Path(tmp), env)
            with services.running([gateway], timeout=60):
                pids = {"gateway": gateway.pid, "redis": redis.pid}
                before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                started = time.monotonic()
                counts = asyncio.run(
                    flood(f"http://127.0.0.1:{port}", args.seconds, args.connections)
                )
                elapsed = time.monotonic() - started
                used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    total = sum(counts.values())
    print(
        f"{total / elapsed:.1f} answers/s {dict(sorted(counts.items()))} in {elapsed:.0f} s; "
        f"CPU per second of flood: gateway {1000 * used['gateway'] / elapsed:.0f} ms, "
        f"Redis {1000 * used['redis'] / elapsed:.0f} ms; gateway CPU per answer "
        f"{1000 * used['gateway'] / max(1, total):.2f} ms; load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
