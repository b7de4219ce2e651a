"""Helpers of the security tests: a customer of the real gateway, and a scanner for card numbers
left anywhere (a Redis value, a database row, a log)."""

from __future__ import annotations

import re
import sqlite3
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

from bot.masking import luhn_valid
from tests.web.conftest import Gateway

# A digit run standing alone: not part of a word or of a hex id, not the fraction of a decimal
# number (confidences such as 0.9814003705978394 are in every tracker).
_LONE_RUN = re.compile(r"(?<![0-9A-Za-z])(?<![0-9]\.)[0-9]{13,19}(?![0-9A-Za-z])")


def luhn_complete(prefix: str) -> str:
    """The prefix with the check digit that makes it Luhn-valid."""
    return next(prefix + str(d) for d in range(10) if luhn_valid(prefix + str(d)))


def digits_of(text: str) -> str:
    """Every decimal digit of the text (any script, read through NFKC), as ASCII, in order."""
    out = []
    for char in unicodedata.normalize("NFKC", text):
        value = unicodedata.decimal(char, None)
        if value is not None:
            out.append(str(value))
    return "".join(out)


def _epoch_millis(run: str) -> bool:
    now = time.time() * 1000
    return len(run) == 13 and abs(int(run) - now) < 10 * 365 * 86400 * 1000


def leaks(text: str, pans: Iterable[str]) -> list[str]:
    """The card numbers found in the text: any of ``pans`` however it is written (digits of the
    text read in order, separators and scripts ignored), and any Luhn-valid 13-19 digit run
    standing alone (other than an epoch-milliseconds timestamp such as a stream id, or the
    fraction of a decimal number)."""
    found = []
    projected = digits_of(text)
    found += [pan for pan in pans if pan in projected]
    ascii_text = "".join(
        str(unicodedata.decimal(c)) if unicodedata.decimal(c, None) is not None else c
        for c in unicodedata.normalize("NFKC", text)
    )
    for run in _LONE_RUN.findall(ascii_text):
        if luhn_valid(run) and not _epoch_millis(run):
            found.append(run)
    return found


async def redis_dump(redis: Redis) -> dict[str, str]:
    """Every key of the Redis database with its value as text, whatever its type."""
    out: dict[str, str] = {}
    async for raw_key in redis.scan_iter(count=1000):
        key = raw_key.decode(errors="replace") if isinstance(raw_key, bytes) else raw_key
        kind = await redis.type(raw_key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "string":
            value: Any = await redis.get(raw_key)
        elif kind == "hash":
            value = await redis.hgetall(raw_key)
        elif kind == "list":
            value = await redis.lrange(raw_key, 0, -1)
        elif kind == "set":
            value = await redis.smembers(raw_key)
        elif kind == "zset":
            value = await redis.zrange(raw_key, 0, -1, withscores=True)
        elif kind == "stream":
            value = await redis.xrange(raw_key)
        else:
            value = kind
        out[key] = f"{key} {value!r}"
    return out


def sqlite_dump(path: Path) -> list[str]:
    """Every row of every table of a SQLite database, as text."""
    rows: list[str] = []
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 (names from the db)
                rows.append(f"{table} {row!r}")
    return rows


@dataclass
class Customer:
    """One conversation of the real gateway, as the widget would hold it."""

    http: aiohttp.ClientSession
    gateway: Gateway
    conversation_id: str
    token: str

    @classmethod
    async def start(cls, http: aiohttp.ClientSession, gateway: Gateway) -> Customer:
        async with http.post(f"{gateway.url}/api/conversations") as response:
            assert response.status == 201
            body = await response.json()
        return cls(http, gateway, body["conversation_id"], body["token"])

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def send(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        url = f"{self.gateway.url}/api/conversations/{self.conversation_id}/messages"
        async with self.http.post(url, json=body, headers=self.headers) as response:
            return response.status, await response.json(), dict(response.headers)

    async def say(self, text: str) -> dict[str, Any]:
        status, body, _ = await self.send({"text": text})
        assert status == 200, body
        return body

    async def history(self) -> list[dict[str, Any]]:
        url = f"{self.gateway.url}/api/conversations/{self.conversation_id}"
        async with self.http.get(url, headers=self.headers) as response:
            assert response.status == 200
            return (await response.json())["messages"]

    async def tracker(self) -> dict[str, Any]:
        url = f"{self.gateway.rasa_url}/conversations/{self.conversation_id}/tracker"
        params = {"token": self.gateway.rasa_token or ""}  # Rasa's HTTP API wants its token
        async with self.http.get(url, params=params) as response:
            assert response.status == 200
            return await response.json()
