"""Rate limits and caps of the gateway, kept in Redis so they hold across several gateways.

* **Rates** use GCRA (the generic cell rate algorithm, as in redis-cell and Stripe's limiter): per
  subject one key holds the "theoretical arrival time"; a request is allowed when it would not
  push that time more than one period ahead. ``"20/m"`` allows 20 at once, then one every 3 s.
  Several checks (e.g. per conversation and per IP) run in ONE Lua script: all are charged or
  none, so parallel requests cannot slip past a limit, and the clock is Redis's (``TIME``), the
  same for every gateway.
* **Open WebSockets** are counted in a sorted set per subject (member: socket id, score: expiry).
  The gateway renews the entries of all its open sockets together, every
  :data:`SOCKET_RENEW_SECONDS`, in one script call per :data:`RENEW_BATCH` sockets (one task per
  gateway, not one per socket: 5,000 sockets used to make 10,000 calls, each its own task); a
  socket removes its entry on close; entries of a gateway that died expire after
  :data:`SOCKET_TTL_SECONDS`, so a dead gateway never leaks the count.

Over a limit a request gets 429 with ``Retry-After`` (:class:`RateLimited`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import re
import uuid
from dataclasses import dataclass, field

from aiohttp import web
from redis.asyncio import Redis

from bot import keys
from bot.config import Settings
from bot.web.errors import ApiError
from bot.web.refusals import RecentRefusals

SOCKET_TTL_SECONDS = 60
SOCKET_RENEW_SECONDS = 20
RENEW_BATCH = 500  # sockets per renewal script call
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*")

# GCRA over the keys KEYS[first .. first + count - 1], with (emission interval ms, period ms)
# pairs in ARGV from `arg`: 0 when every check allows (all are charged), else ms until allowed.
# Shared with the script that starts a customer turn (bot.web.turn_scripts).
GCRA_FUNCTION = """
local function gcra(first, count, arg)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local wait = 0
  local tats = {}
  for i = 0, count - 1 do
    local interval, period = tonumber(ARGV[arg + 2 * i]), tonumber(ARGV[arg + 2 * i + 1])
    local tat = tonumber(redis.call('GET', KEYS[first + i]) or now)
    if tat < now then tat = now end
    local new_tat = tat + interval
    if new_tat - now > period then
      wait = math.max(wait, new_tat - now - period)
    end
    tats[i] = new_tat
  end
  if wait > 0 then return wait end
  for i = 0, count - 1 do
    redis.call('SET', KEYS[first + i], tats[i], 'PX', math.max(1, tats[i] - now))
  end
  return 0
end
"""

# KEYS: one GCRA key per check. ARGV: pairs (emission interval ms, period ms) per key.
# Returns {1, 0} when every check allows (all are charged), else {0, ms until allowed}.
_GCRA = (
    GCRA_FUNCTION
    + """
local wait = gcra(1, #KEYS, 1)
if wait > 0 then return {0, wait} end
return {1, 0}
"""
)

# KEYS: one sorted set per cap. ARGV[1] socket id, ARGV[2] ttl ms, then one cap per key.
# Drops expired entries; adds the socket to every set if none is full, else returns the index
# (1-based) of the full one.
_SOCKET_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[2 + i]) then return i end
end
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2]))
end
return 0
"""

# KEYS: the sets of many sockets; ARGV[1] ttl ms, then per key the socket id counted in it.
# Renews entries still there (XX: a released or expired socket is not brought back).
_SOCKET_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], ttl)
end
return 0
"""


@dataclass(frozen=True)
class Charges:
    """Rate checks ready for a script: the limits that apply, their GCRA keys and arguments,
    and where Redis's refusals of them are remembered (:mod:`bot.web.refusals`)."""

    names: tuple[str, ...]
    keys: list[str]
    args: list[int]
    refusals: RecentRefusals | None = field(default=None, compare=False, repr=False)

    def refused(self, wait: float, sent_at: float | None = None, proof: str = "") -> RateLimited:
        """The 429 for a refusal that must wait ``wait`` seconds (named after the first limit).
        With ``sent_at`` (when the refusing script was sent, on the refusals' clock) Redis's
        refusal is remembered, for requests with the same ``proof``."""
        if sent_at is not None and self.refusals is not None:
            self.refusals.remember(self.keys, wait, sent_at, proof)
        return RateLimited(f"{RATES[self.names[0]][1]}; retry in a moment", wait)

    def known_refused(self, proof: str = "") -> RateLimited | None:
        """The 429 without Redis when Redis refused these very checks (same ``proof``) so
        recently that it would still refuse them (a repeat: :meth:`RateLimited.held` before it
        is raised); None: ask Redis."""
        if not self.keys or self.refusals is None:
            return None
        wait = self.refusals.wait(self.keys, proof)
        if wait <= 0:
            return None
        refusal = self.refused(wait)
        refusal.repeat_hold = min(self.refusals.repeat_delay, wait)
        return refusal

    def clock(self) -> float:
        """Now on the refusals' clock (pass it as ``sent_at`` when a script refuses)."""
        return self.refusals.clock() if self.refusals is not None else 0.0


@dataclass(frozen=True)
class Rate:
    """Up to ``count`` at once, refilled evenly over ``period`` seconds (``None``: no limit)."""

    count: int
    period: float

    @classmethod
    def parse(cls, text: str) -> Rate | None:
        """``"20/m"``, ``"10/10s"``, ``"40/5m"``; ``"off"`` (or empty) means no limit."""
        if text.strip().lower() in ("", "off", "none", "unlimited"):
            return None
        match = _RATE.fullmatch(text)
        if not match or int(match.group(1)) < 1:
            raise ValueError(f"a rate looks like '20/m' or '10/10s' or 'off', not {text!r}")
        period = int(match.group(2) or 1) * _UNITS[match.group(3)]
        if period < 1:
            raise ValueError(f"the period of {text!r} must be at least one second (e.g. '20/m')")
        return cls(int(match.group(1)), float(period))


class RateLimited(ApiError):
    """429 with ``Retry-After`` (whole seconds, at least 1)."""

    def __init__(self, message: str, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        self.repeat_hold: float | None = None  # a repeat refused from memory: held this long
        super().__init__(429, "too_many_requests", message, retry_after=self.retry_after)

    async def held(self) -> None:
        """Wait before a repeat's 429 is answered: a client that ignores ``Retry-After`` gets at
        most one refusal per connection and ``RATE_LIMIT_REPEAT_DELAY_SECONDS`` (never longer than
        its ``Retry-After``), instead of as many as the gateway's CPU can answer."""
        if self.repeat_hold:
            await asyncio.sleep(self.repeat_hold)

    def response(self) -> web.Response:
        """The 429: the same JSON as :func:`bot.web.errors.error_response`, encoded once per
        message and wait (a flood is refused hundreds of times a second). A repeat refused from
        memory is marked :data:`REPEAT` (not logged line by line; the metrics count it)."""
        response = web.Response(
            body=_refusal_body(self.code, self.message, self.retry_after),
            status=self.status,
            content_type="application/json",
            charset="utf-8",
            headers={"Retry-After": str(self.retry_after)},
        )
        if self.repeat_hold is not None:
            response[REPEAT] = True
        return response


REPEAT = "support.refused_from_memory"  # key in a response: a repeat refused without Redis


@functools.lru_cache(maxsize=1024)
def _refusal_body(code: str, message: str, retry_after: int) -> bytes:
    error = {"code": code, "message": message, "details": {"retry_after": retry_after}}
    return json.dumps({"error": error}).encode()


# The limits by name: (setting attribute, what the client is told).
RATES = {
    "conversations_per_ip": ("rate_limit_conversations_per_ip", "too many new conversations"),
    "messages_per_conversation": (
        "rate_limit_messages_per_conversation",
        "too many messages in this conversation",
    ),
    "messages_per_ip": ("rate_limit_messages_per_ip", "too many messages from your address"),
    "typing_per_conversation": ("rate_limit_typing_per_conversation", "too many typing signals"),
    "logins_per_account": ("rate_limit_logins_per_account", "too many login attempts"),
    "logins_per_ip": ("rate_limit_logins_per_ip", "too many login attempts from your address"),
}

# Generous limits for load tools and tests that drive many customers from one address.
GENEROUS_ENV = {
    "RATE_LIMIT_CONVERSATIONS_PER_IP": "100000/m",
    "RATE_LIMIT_MESSAGES_PER_CONVERSATION": "100000/m",
    "RATE_LIMIT_MESSAGES_PER_IP": "100000/m",
    "RATE_LIMIT_TYPING_PER_CONVERSATION": "100000/m",
    "RATE_LIMIT_LOGINS_PER_ACCOUNT": "100000/m",
    "RATE_LIMIT_LOGINS_PER_IP": "100000/m",
    "MAX_SOCKETS_PER_IP": "100000",
    "RATE_LIMIT_REQUESTS_PER_IP": "off",  # HAProxy's, in front of several gateways
}


def rate_key(namespace: str, name: str, subject: str) -> str:
    """``<ns>:limit:<name>:<subject>``: a GCRA time (expires when the subject is idle)."""
    return keys.LIMIT_RATE.format(ns=namespace, name=name, subject=subject)


def sockets_key(namespace: str, scope: str, subject: str) -> str:
    """``<ns>:limit:sockets:<scope>:<subject>``: open sockets, scored by expiry (ms)."""
    return keys.LIMIT_SOCKETS.format(ns=namespace, scope=scope, subject=subject)


class Limits:
    """The gateway's limits on one Redis (one per application, :data:`LIMITS`)."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._ns = settings.queue_namespace
        self.rates = {
            name: Rate.parse(getattr(settings, attr)) for name, (attr, _) in RATES.items()
        }
        self.socket_caps = {
            "conversation": settings.max_sockets_per_conversation,
            "ip": settings.max_sockets_per_ip,
        }
        self._gcra = redis.register_script(_GCRA)
        self._acquire = redis.register_script(_SOCKET_ACQUIRE)
        self._renew = redis.register_script(_SOCKET_RENEW)
        self._slots: dict[str, SocketSlot] = {}  # this gateway's open sockets, by slot id
        # Redis's recent refusals (bot/web/refusals.py); a repeat's 429 waits repeat_delay
        self.refusals = RecentRefusals(repeat_delay=settings.rate_limit_repeat_delay_seconds)
        self._renewer: asyncio.Task[None] | None = None

    def charges(self, *checks: tuple[str, str]) -> Charges:
        """The GCRA keys and arguments of ``(limit name, subject)`` checks (limits that are off
        left out), for :data:`GCRA_FUNCTION` in a script."""
        keys: list[str] = []
        args: list[int] = []
        for name, subject in checks:
            rate = self.rates[name]
            if rate is None:
                continue
            keys.append(rate_key(self._ns, name, subject))
            period_ms = int(rate.period * 1000)
            args += [max(1, period_ms // rate.count), period_ms]
        names = tuple(n for n, _ in checks if self.rates[n] is not None)
        return Charges(names, keys, args, self.refusals)

    async def check(self, *checks: tuple[str, str]) -> float:
        """Charge every ``(limit name, subject)`` or none; 0.0 when allowed, else seconds to wait
        (at once, without Redis, when Redis refused the same checks so recently that it still
        would: :mod:`bot.web.refusals`)."""
        charges = self.charges(*checks)
        if not charges.keys:
            return 0.0
        known = self.refusals.wait(charges.keys)
        if known > 0:
            return known
        return await self._charge(charges)

    async def _charge(self, charges: Charges) -> float:
        """Ask Redis to charge ``charges`` (non-empty); 0.0 when allowed, else seconds to wait,
        the refusal remembered."""
        sent_at = self.refusals.clock()
        allowed, wait_ms = await self._gcra(keys=charges.keys, args=charges.args)
        if int(allowed):
            return 0.0
        wait = int(wait_ms) / 1000
        self.refusals.remember(charges.keys, wait, sent_at)
        return wait

    async def hit(self, *checks: tuple[str, str]) -> None:
        """Like :meth:`check`, raising :class:`RateLimited` (429) when over a limit (a repeat
        Redis refused recently: without Redis, after :meth:`RateLimited.held`)."""
        charges = self.charges(*checks)
        if not charges.keys:
            return
        known = charges.known_refused()
        if known is not None:
            await known.held()
            raise known
        wait = await self._charge(charges)
        if wait:
            raise charges.refused(wait)

    async def open_socket(self, **subjects: str) -> SocketSlot | None:
        """Count an open socket for each ``scope=subject`` (e.g. ``ip="1.2.3.4"``).

        Returns the slot (renewed with the gateway's others while open; release it on close),
        or None when one cap is full (nothing is counted then).
        """
        caps = [(scope, subject) for scope, subject in subjects.items()]
        keys = [sockets_key(self._ns, scope, subject) for scope, subject in caps]
        slot_id = uuid.uuid4().hex
        ttl_ms = SOCKET_TTL_SECONDS * 1000
        full = await self._acquire(
            keys=keys, args=[slot_id, ttl_ms, *(self.socket_caps[s] for s, _ in caps)]
        )
        if int(full):
            return None
        slot = self._slots[slot_id] = SocketSlot(self, keys, slot_id)
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._keep_alive())
        return slot

    async def _keep_alive(self) -> None:
        """Renew every open slot each SOCKET_RENEW_SECONDS; ends when none is left."""
        while self._slots:
            await self._renew_round()

    async def run(self) -> None:
        """Renew every open slot each SOCKET_RENEW_SECONDS until cancelled (the gateway runs
        this from startup, so that no renewal task outlives its graceful stop)."""
        self._renewer = asyncio.current_task()
        try:
            while True:
                await self._renew_round()
        finally:
            self._renewer = None

    async def _renew_round(self) -> None:
        await asyncio.sleep(SOCKET_RENEW_SECONDS)
        with contextlib.suppress(Exception):  # Redis briefly away: the next round retries
            await self.renew_all()

    async def renew_all(self) -> None:
        """Renew the entries of all this gateway's open sockets now (RENEW_BATCH per call)."""
        slots = list(self._slots.values())
        ttl_ms = SOCKET_TTL_SECONDS * 1000
        for start in range(0, len(slots), RENEW_BATCH):
            keys: list[str] = []
            members: list[str] = []
            for slot in slots[start : start + RENEW_BATCH]:
                keys += slot.keys
                members += [slot.slot_id] * len(slot.keys)
            await self._renew(keys=keys, args=[ttl_ms, *members])

    async def close(self) -> None:
        """Stop renewing (the gateway stops; its entries expire unless released)."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None

    async def _release_slot(self, slot: SocketSlot) -> None:
        self._slots.pop(slot.slot_id, None)
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in slot.keys:
                pipe.zrem(key, slot.slot_id)
            await pipe.execute()


class SocketSlot:
    """One open socket's place in the counts; renewed by its :class:`Limits` until released."""

    def __init__(self, limits: Limits, keys: list[str], slot_id: str) -> None:
        self._limits = limits
        self.keys = keys
        self.slot_id = slot_id

    async def release(self) -> None:
        self._limits._slots.pop(self.slot_id, None)  # renewed no more, whatever Redis says
        with contextlib.suppress(Exception):  # unreachable Redis: the entry expires by itself
            await self._limits._release_slot(self)


LIMITS = web.AppKey("limits", Limits)


def limits_of(request: web.Request) -> Limits:
    return request.app[LIMITS]


def client_ip(request: web.Request) -> str:
    """The client's address: the socket peer, or the forwarded client when the peer is a trusted
    proxy (:mod:`bot.web.proxy` rewrites ``request.remote`` then)."""
    return request.remote or "unknown"
