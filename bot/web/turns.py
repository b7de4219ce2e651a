"""Idempotent customer turns: one ``client_id`` runs one turn, however many retries overlap.

Before a customer message is routed (to Rasa or to the agent) its ``client_id`` is reserved
atomically: ``SET <ns>:web:conv:<id>:turn:<client_id> pending NX EX <ttl>``. Only the request
that made the reservation runs the turn; it runs in a task of its own that finishes even when
that request gives up waiting or its client disconnects, and it records the result in the
conversation's event stream under the same client id (:mod:`bot.web.events`).

A request that finds the reservation taken waits for that result (polling Redis, so it works
across gateways) and returns it. The marker then says what happened:

* ``pending``: the turn is running; after ``turn_wait_seconds`` the request gets a 503 with
  ``Retry-After`` and a later retry returns the result once it is recorded;
* ``done``: the result is in the stream;
* ``unknown``: Rasa received the message but did not answer in time (or failed while
  answering), so the turn may have run: it is never run again for this client id; a retry gets
  a 409 that says so (the customer can send a new message);
* no marker: the message never reached Rasa; a retry runs it.

The ``pending`` marker records when the turn started and lives as long as a result, so a gateway
that dies mid-turn leaves it behind: past ``pending_ttl`` it reads as ``unknown`` (409), never as
"no marker", so another gateway never runs that turn a second time. Before that, a retry settles
such a turn from Rasa's tracker (:mod:`bot.web.turn_recovery`): it records the turn if Rasa
finished it, or releases the reservation if Rasa never ran it.
"""

from __future__ import annotations

import time
from enum import Enum
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from bot import keys
from bot.web.errors import ApiError

PENDING, DONE, UNKNOWN = "pending", "done", "unknown"


class TurnState(str, Enum):
    """What became of a reserved client id."""

    pending = PENDING
    done = DONE
    unknown = UNKNOWN
    absent = "absent"


class RetryLater(ApiError):
    """An API error with a ``Retry-After`` header (seconds)."""

    def __init__(self, status: int, code: str, message: str, retry_after: int, **details: Any):
        super().__init__(status, code, message, retry_after=retry_after, **details)
        self.retry_after = retry_after

    def response(self) -> web.Response:
        response = super().response()
        response.headers["Retry-After"] = str(self.retry_after)
        return response


def still_running(retry_after: int) -> RetryLater:
    return RetryLater(
        503,
        "turn_pending",
        "the assistant is still answering this message; retry with the same client_id",
        retry_after,
    )


def outcome_unknown(retry_after: int) -> RetryLater:
    return RetryLater(
        409,
        "turn_outcome_unknown",
        "the assistant did not answer this message in time and it may have been handled; "
        "it is not sent again. Send a new message if you still need an answer",
        retry_after,
    )


def not_sent(retry_after: int) -> RetryLater:
    return RetryLater(
        503, "turn_not_sent", "this message was not delivered; retry shortly", retry_after
    )


def _started(marker: str) -> float | None:
    try:
        return float(marker.split(":", 1)[1])
    except (IndexError, ValueError):
        return None


class TurnReservations:
    """The per-client-id markers of customer turns."""

    def __init__(self, redis: Redis, namespace: str, pending_ttl: int, result_ttl: int) -> None:
        self._redis = redis
        self._ns = namespace
        self._pending_ttl = pending_ttl
        self._result_ttl = result_ttl

    def key(self, conversation_id: str, client_id: str) -> str:
        return keys.WEB_CONVERSATION_TURN.format(
            ns=self._ns, conversation=conversation_id, client_id=client_id
        )

    async def reserve(self, conversation_id: str, client_id: str) -> bool:
        """True for the one caller that may run this turn.

        The marker is ``pending:<start time>`` and lives as long as a result: if the gateway that
        holds it dies mid-turn, the marker does not vanish (which would let a retry run the turn
        again although Rasa may have run it); once it is older than the pending limit it reads as
        ``unknown`` instead."""
        key = self.key(conversation_id, client_id)
        marker, ttl = self.new_marker()
        return bool(await self._redis.set(key, marker, nx=True, ex=ttl))

    def new_marker(self) -> tuple[str, int]:
        """The ``pending`` marker of a turn starting now, and how long it lives (see
        :meth:`reserve`; :mod:`bot.web.turn_scripts` reserves with it in its own script)."""
        return f"{PENDING}:{time.time():.3f}", self._result_ttl

    @property
    def result_ttl(self) -> int:
        return self._result_ttl

    async def state(self, conversation_id: str, client_id: str) -> TurnState:
        value = await self._redis.get(self.key(conversation_id, client_id))
        if value is None:
            return TurnState.absent
        value = value.decode() if isinstance(value, bytes) else value
        if value.startswith(PENDING):
            started = _started(value)
            if started is not None and time.time() - started > self._pending_ttl:
                return TurnState.unknown  # its gateway died mid-turn: the turn may have run
            return TurnState.pending
        return TurnState(value)

    async def pending_since(self, conversation_id: str, client_id: str) -> float | None:
        """When the turn that holds this client id started (None: not pending)."""
        value = await self._redis.get(self.key(conversation_id, client_id))
        value = value.decode() if isinstance(value, bytes) else value
        return _started(value) if value and value.startswith(PENDING) else None

    async def finish(self, conversation_id: str, client_id: str, state: TurnState) -> None:
        """Record ``done`` or ``unknown``; ``absent`` releases the reservation."""
        key = self.key(conversation_id, client_id)
        if state is TurnState.absent:
            await self._redis.delete(key)
        else:
            await self._redis.set(key, state.value, ex=self._result_ttl)
