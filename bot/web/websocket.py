"""Live updates over WebSockets, read from the conversations' Redis streams.

Customer: ``GET /api/conversations/{id}/ws``. Agent: ``GET /api/agent/ws``. The upgrade is
refused (403) for an origin that is not allowed. The first frame from the client authenticates:
``{"type": "hello", "token": "...", "after": "<last event id>"}`` for a customer (the
conversation's token), ``{"type": "hello", "token": "<session token>"}`` for an agent. Tokens are
never put in URLs.

Limits (:mod:`bot.web.limits`): open sockets are counted per client IP (over the cap the upgrade
gets 429 with ``Retry-After``) and per conversation (over the cap the socket is closed with code
4429 after the hello). Typing frames go to the typing relay (:mod:`bot.web.typing_relay`), never
to the event stream; frames over the typing rate are dropped.

The server then sends ``{"type": "ready", ...state}`` followed by every event after ``after``
(the replay of what a reload or a dropped connection missed) and then live events as they are
appended, each ``{"type": "event", "conversation_id": ..., "event": {...}}``. A customer in the
queue also gets ``{"type": "state", "mode", "position", "eta_seconds"}`` when these change.

Agents send ``{"type": "watch", "conversations": {"<conversation id>": "<last event id>"}}`` to
follow the conversations of the tickets they hold (a lead may watch any), and receive
``{"type": "queue", "tickets": [...]}`` whenever the queue changes, and
``{"type": "mine", "tickets": [...]}`` for the tickets they hold. An agent gets a conversation's
events only while it holds its ticket (:mod:`bot.web.access`): once a resolve, hand-back,
transfer or lapsed lease ends that, nothing more is relayed and the console gets
``{"type": "revoked", "conversation_id", "ticket_id", "state", "reason": "closed" | "moved"}``.
While an agent's socket is open and the agent is online, the gateway keeps the agent's presence
alive with heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.web.access import Watch, held_conversations, held_in, is_lead, revoked_frame
from bot.web.conversations import ConversationNotFound, TokenRejected
from bot.web.errors import ApiError, forbidden
from bot.web.fanout import StreamFanout, fanout_of
from bot.web.gateway import GATEWAY, Gateway
from bot.web.inputs import loads, valid_event_id
from bot.web.limits import RateLimited, client_ip, limits_of
from bot.web.security import origin_allowed
from bot.web.typing_relay import Send, typing_relay

BLOCK_MS = 1000
# How often an open customer socket re-reads the handoff state. In bot mode a change comes from a
# turn, and the turn records it in the stream (a ``mode`` event), which makes the socket re-read
# at once; the slow poll only backs that up, so thousands of idle sockets cost little.
STATE_POLL_SECONDS = {"waiting": 2.0, "agent": 5.0, "bot": 30.0}
POLL_JITTER = 0.2  # +-20 %: idle sockets' polls spread out instead of arriving together
# The pump sleeps until an event or its next state poll, at most this long (a closed socket
# cancels it, so it need not wake to look): 5,000 idle sockets wake ~170 times a second, not 1,000.
MAX_BLOCK_SECONDS = 60.0
WAIT_CHECK_SECONDS = 30.0
QUEUE_POLL_SECONDS = 1.5
HEARTBEAT_SECONDS = 3.0
HELLO_TIMEOUT = 10.0
MAX_FRAME_BYTES = 16 * 1024
MAX_WATCHED = 50
SOCKETS = web.AppKey("sockets", weakref.WeakSet)

log = logging.getLogger("bot.web.websocket")
routes = web.RouteTableDef()


def _sockets(app: web.Application) -> weakref.WeakSet:
    if SOCKETS not in app:
        app[SOCKETS] = weakref.WeakSet()
    return app[SOCKETS]


async def close_all(app: web.Application) -> None:
    """Close every open socket (the gateway is stopping); clients reconnect and replay."""
    for ws in list(_sockets(app)):
        await ws.close(code=1001, message=b"gateway restarting")


async def _open(request: web.Request) -> web.WebSocketResponse:
    gateway = request.app[GATEWAY]
    if not origin_allowed(request, gateway.allowed_origins):
        raise forbidden(f"origin {request.headers.get('Origin')!r} is not allowed")
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_FRAME_BYTES)
    await ws.prepare(request)
    _sockets(request.app).add(ws)
    return ws


async def _hello(ws: web.WebSocketResponse) -> dict[str, Any] | None:
    try:
        msg = await asyncio.wait_for(ws.receive(), HELLO_TIMEOUT)
    except asyncio.TimeoutError:
        await _fail(ws, "send a hello frame first")
        return None
    frame = _frame(msg)
    if not frame or frame.get("type") != "hello" or not isinstance(frame.get("token"), str):
        await _fail(ws, 'the first frame must be {"type": "hello", "token": ...}')
        return None
    return frame


def _frame(msg: Any) -> dict[str, Any] | None:
    if msg.type != WSMsgType.TEXT:
        return None
    try:
        frame = loads(msg.data)
    except ApiError:
        return None
    return frame if isinstance(frame, dict) else None


async def _fail(ws: web.WebSocketResponse, message: str, code: int = 4401) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_json({"type": "error", "message": message})
        await ws.close(code=code, message=message.encode()[:120])


def _offset(value: Any) -> str:
    return value if valid_event_id(value) else "0-0"


async def _limited(
    request: web.Request, serve: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Count the socket against the per-IP cap (429 before the upgrade when full)."""
    slot = await limits_of(request).open_socket(ip=client_ip(request))
    if slot is None:
        raise RateLimited("too many open connections from your address", 30)
    try:
        return await serve(request)
    finally:
        await slot.release()


def _typing_sender(ws: web.WebSocketResponse) -> Send:
    async def send(conversation_id: str, event: dict[str, Any]) -> None:
        await ws.send_json({"type": "event", "conversation_id": conversation_id, "event": event})

    return send


@routes.get("/api/conversations/{conversation_id}/ws")
async def customer_socket(request: web.Request) -> web.StreamResponse:
    return await _limited(request, _customer_socket)


@routes.get("/api/agent/ws")
async def agent_socket(request: web.Request) -> web.StreamResponse:
    return await _limited(request, _agent_socket)


async def _customer_socket(request: web.Request) -> web.WebSocketResponse:
    ws = await _open(request)
    gateway = request.app[GATEWAY]
    conversation_id = request.match_info["conversation_id"]
    hello = await _hello(ws)
    if hello is None:
        return ws
    try:
        await gateway.conversations.authenticate(conversation_id, hello["token"])
    except (ConversationNotFound, TokenRejected):
        await _fail(ws, "this token does not belong to this conversation", 4403)
        return ws
    slot = await limits_of(request).open_socket(conversation=conversation_id)
    if slot is None:
        await _fail(ws, "too many open connections to this conversation", 4429)
        return ws
    try:
        await _customer_session(request, ws, conversation_id, _offset(hello.get("after")))
    finally:
        await slot.release()
    return ws


async def _customer_session(
    request: web.Request, ws: web.WebSocketResponse, conversation_id: str, offset: str
) -> None:
    """An authenticated customer socket: ready, then live events, typing both ways."""
    gateway = request.app[GATEWAY]
    state = await gateway.conversations.sync_mode(conversation_id)
    await ws.send_json({"type": "ready", "conversation_id": conversation_id, **state.public()})
    typing = typing_relay(request).listen({conversation_id}, _typing_sender(ws))
    fanout = fanout_of(request)
    pump = asyncio.create_task(_customer_pump(ws, gateway, fanout, conversation_id, offset))
    try:
        async for msg in ws:
            frame = _frame(msg)
            if frame and frame.get("type") == "typing":  # excess frames are dropped
                limits = limits_of(request)
                if not await limits.check(
                    ("typing_per_conversation", f"customer:{conversation_id}")
                ):
                    await typing_relay(request).publish(
                        conversation_id, "customer", bool(frame.get("typing"))
                    )
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        await typing_relay(request).unlisten(typing)


async def _customer_pump(
    ws: web.WebSocketResponse,
    gateway: Gateway,
    fanout: StreamFanout,
    conversation_id: str,
    offset: str,
) -> None:
    """Relay the conversation's events (history after ``offset`` first) and waiting updates.

    Events arrive as soon as they are appended, through the gateway's fan-out
    (:mod:`bot.web.fanout`: no Redis connection of the socket's own). The handoff state is polled
    every STATE_POLL_SECONDS[mode] (and at once after a ``mode`` event) to push position and ETA
    changes while waiting and to notice changes made elsewhere (e.g. a lapsed agent lease puts the
    customer back in the queue).
    """
    last_state: dict[str, Any] | None = None
    loop = asyncio.get_running_loop()
    next_poll = 0.0
    next_wait_check = loop.time() + WAIT_CHECK_SECONDS
    subscription = fanout.subscribe()
    try:
        await subscription.follow({conversation_id: offset})
        while not ws.closed:
            wait = max(0.0, min(next_poll - loop.time(), MAX_BLOCK_SECONDS))
            for _conversation, event in await subscription.next(wait):
                await ws.send_json(
                    {"type": "event", "conversation_id": conversation_id, "event": event}
                )
                if event.get("type") == "mode":
                    next_poll = 0.0
            if loop.time() < next_poll:
                continue
            try:
                state = (await gateway.conversations.sync_mode(conversation_id)).public()
            except (RedisConnectionError, RedisTimeoutError):  # busy pool or Redis away: later
                next_poll = loop.time() + STATE_POLL_SECONDS["waiting"]
                continue
            interval = STATE_POLL_SECONDS.get(state["mode"], 5.0)
            next_poll = loop.time() + interval * random.uniform(1 - POLL_JITTER, 1 + POLL_JITTER)
            if state != last_state:
                last_state = state
                await ws.send_json({"type": "state", **state})
            if state["mode"] != "waiting":
                next_wait_check = loop.time() + WAIT_CHECK_SECONDS
            elif loop.time() >= next_wait_check:
                next_wait_check = loop.time() + WAIT_CHECK_SECONDS
                replies = await gateway.desk.check_wait(conversation_id)
                await gateway.conversations.relay_bot_replies(conversation_id, replies)
    except (ConnectionError, RuntimeError, asyncio.CancelledError):
        return
    except Exception:
        log.exception("customer socket pump failed")
        await _fail(ws, "temporary problem; reconnect", 1011)
    finally:
        await subscription.close()


async def _agent_socket(request: web.Request) -> web.WebSocketResponse:
    ws = await _open(request)
    gateway = request.app[GATEWAY]
    hello = await _hello(ws)
    if hello is None:
        return ws
    session = await gateway.accounts.session(hello["token"])
    if session is None:
        await _fail(ws, "log in first: the agent session is missing or expired")
        return ws
    agent = session.agent
    watch = Watch(agent, MAX_WATCHED)
    changed = asyncio.Event()
    await ws.send_json({"type": "ready", "agent": agent.public()})
    typing = typing_relay(request).listen(watch.offsets, _typing_sender(ws))
    pumps = [
        asyncio.create_task(_agent_events_pump(ws, gateway, fanout_of(request), watch, changed)),
        asyncio.create_task(_agent_queue_pump(ws, gateway, watch, hello["token"])),
    ]
    try:
        async for msg in ws:
            frame = _frame(msg)
            if frame and frame.get("type") == "watch":
                await _watch(gateway, watch, frame.get("conversations"))
                changed.set()
    finally:
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        await typing_relay(request).unlisten(typing)
    return ws


async def _watch(gateway: Gateway, watch: Watch, wanted: Any) -> None:
    """Follow the conversations asked for that this agent may see (held tickets; a lead: any)."""
    if not isinstance(wanted, dict):
        return
    held = await held_conversations(gateway.desk, watch.agent)
    watch.set({c: _offset(offset) for c, offset in wanted.items()}, held)


async def _revoke(ws: web.WebSocketResponse, gateway: Gateway, watch: Watch, held: dict) -> None:
    """Stop relaying the conversations whose ticket the agent no longer holds, and say so."""
    for conversation_id, ticket_id in watch.revoke(held):
        await ws.send_json(await revoked_frame(gateway.desk, conversation_id, ticket_id))


async def _agent_events_pump(
    ws: web.WebSocketResponse,
    gateway: Gateway,
    fanout: StreamFanout,
    watch: Watch,
    changed: asyncio.Event,
) -> None:
    """Relay the watched conversations' events (through the gateway's fan-out, like a
    customer's). Each batch is relayed only after checking that the agent still holds the
    conversations' tickets (a resolve, transfer or lapsed lease may have ended it since the last
    batch); what it no longer holds is dropped and revoked."""
    watched = watch.offsets
    subscription = fanout.subscribe()
    try:
        while not ws.closed:
            changed.clear()
            await subscription.follow(dict(watched))
            if not watched:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(changed.wait(), BLOCK_MS / 1000)
                continue
            batch = await subscription.next(BLOCK_MS / 1000)
            if batch and not is_lead(watch.agent):
                await _revoke(
                    ws, gateway, watch, await held_conversations(gateway.desk, watch.agent)
                )
            for conversation_id, event in batch:
                if conversation_id not in watched:
                    continue
                watched[conversation_id] = event["id"]
                await ws.send_json(
                    {"type": "event", "conversation_id": conversation_id, "event": event}
                )
    except (ConnectionError, RuntimeError, asyncio.CancelledError):
        return
    except Exception:
        log.exception("agent socket events pump failed")
        await _fail(ws, "temporary problem; reconnect", 1011)
    finally:
        await subscription.close()


async def _agent_queue_pump(
    ws: web.WebSocketResponse, gateway: Gateway, watch: Watch, token: str
) -> None:
    """Queue snapshots when they change, the agent's own tickets, and presence heartbeats; a
    watched conversation whose ticket the agent no longer holds is revoked here too, so the
    console hears of it even when nothing is said."""
    agent = watch.agent
    last: dict[str, str] = {}
    loop = asyncio.get_running_loop()
    next_heartbeat = 0.0
    try:
        while not ws.closed:
            if await gateway.accounts.session(token) is None:
                await _fail(ws, "the agent session expired; log in again")
                return
            if loop.time() >= next_heartbeat:
                next_heartbeat = loop.time() + HEARTBEAT_SECONDS
                online = await gateway.desk.heartbeat(agent)
                if last.get("presence") != str(online):
                    last["presence"] = str(online)
                    await ws.send_json({"type": "presence", "online": online})
            mine = await gateway.desk.agent_tickets(agent)
            await _revoke(ws, gateway, watch, held_in(mine, agent))
            for kind, tickets in (
                ("queue", await gateway.desk.list_tickets("open", agent, with_wait=False)),
                ("mine", mine),
            ):
                body = json.dumps(tickets, sort_keys=True)
                if last.get(kind) != body:
                    last[kind] = body
                    await ws.send_json({"type": kind, "tickets": tickets})
            await asyncio.sleep(QUEUE_POLL_SECONDS)
    except (ConnectionError, RuntimeError, asyncio.CancelledError):
        return
    except Exception:
        log.exception("agent socket queue pump failed")
        await _fail(ws, "temporary problem; reconnect", 1011)
