"""The customer HTTP API: start a conversation, send messages, read it back.

``POST /api/conversations`` -> ``{conversation_id, token}``; the token is a bearer token for that
conversation only. ``POST /api/conversations/{id}/messages`` takes ``{"text": ...}`` or
``{"payload": "/intent"}`` (only the payload of a button the bot offered last, or the request for
a person; the title shown is the offered button's, a ``title`` sent along is ignored) and an
optional ``client_id`` that makes a retry safe (overlapping retries run the turn once), and
returns the new events and the mode. ``GET /api/conversations/{id}`` returns the
mode (position and ETA when waiting) and the messages so far (``?after=<event id>`` for the
missed ones only). ``POST /api/conversations/{id}/typing`` signals typing to the agent.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from bot.web.conversations import (
    MAX_PAYLOAD_CHARS,
    MAX_TEXT_CHARS,
    PAYLOAD_PATTERN,
    ConversationNotFound,
    Incoming,
    TokenRejected,
    has_words,
    token_hash,
)
from bot.web.errors import ApiError, bad_request, forbidden, not_found, too_large
from bot.web.gateway import GATEWAY, Gateway
from bot.web.inputs import read_json, valid_event_id
from bot.web.limits import client_ip, limits_of
from bot.web.security import bearer_token, require_origin
from bot.web.typing_relay import typing_relay

EVENT_ID = re.compile(r"\d{1,20}-\d{1,20}")
CLIENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

routes = web.RouteTableDef()


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or a clear 4xx (see :func:`bot.web.inputs.read_json`)."""
    return await read_json(request)


def optional_str(body: dict[str, Any], name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"'{name}' must be a string")
    if len(value) > limit:
        raise too_large(f"'{name}' is longer than {limit} characters", limit=limit)
    return value


def parse_incoming(body: dict[str, Any]) -> Incoming:
    """Validate a customer message body: exactly one of text and payload."""
    text = optional_str(body, "text", MAX_TEXT_CHARS)
    payload = optional_str(body, "payload", MAX_PAYLOAD_CHARS)
    title = optional_str(body, "title", 200)
    client_id = optional_str(body, "client_id", 64)
    if (text is None) == (payload is None):
        raise bad_request("send exactly one of 'text' and 'payload'")
    if text is not None and not has_words(text):
        raise bad_request("'text' must have more than spaces, slashes and invisible characters")
    if payload is not None and not PAYLOAD_PATTERN.fullmatch(payload):
        raise bad_request("'payload' must look like '/intent' or '/intent{...}'")
    if client_id is not None and not CLIENT_ID.fullmatch(client_id):
        raise bad_request("'client_id' must be 1-64 letters, digits or _.:-")
    return Incoming(
        text=text.strip() if text else None, payload=payload, title=title, client_id=client_id
    )


def event_offset(value: str | None) -> str:
    if value is None or value == "":
        return "0-0"
    if not valid_event_id(value):
        raise bad_request("'after' must be an event id like '1700000000000-0'")
    return value


async def authorized_conversation(request: web.Request, gateway: Gateway) -> str:
    """The conversation id of the path, once the bearer token is proven to be its own."""
    conversation_id = request.match_info["conversation_id"]
    token = bearer_token(request)
    try:
        await gateway.conversations.authenticate(conversation_id, token)
    except ConversationNotFound as error:
        raise not_found("no such conversation") from error
    except TokenRejected as error:
        raise forbidden("this token does not belong to this conversation") from error
    return conversation_id


@routes.post("/api/conversations")
async def create_conversation(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    require_origin(request, gateway.allowed_origins)
    await limits_of(request).hit(("conversations_per_ip", client_ip(request)))
    conversation_id, token = await gateway.conversations.create(request.headers.get("Origin"))
    return web.json_response({"conversation_id": conversation_id, "token": token}, status=201)


@routes.post("/api/conversations/{conversation_id}/messages")
async def post_message(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    require_origin(request, gateway.allowed_origins)
    conversation_id = request.match_info["conversation_id"]
    token = bearer_token(request)
    charges = limits_of(request).charges(
        ("messages_per_conversation", conversation_id), ("messages_per_ip", client_ip(request))
    )
    # Redis refused this token's very checks so recently that it still would: the 429 at once,
    # before the body is read or Redis asked (a flood's cost, bot/web/refusals.py)
    known = charges.known_refused(proof=token_hash(token))
    if known is not None:
        await known.held()
        raise known
    try:
        incoming = parse_incoming(await json_body(request))
    except (ApiError, web.HTTPException):
        await authorized_conversation(request, gateway)  # a wrong token answers first, as always
        raise
    # token, limits, earlier result, offer and reservation: one script (bot/web/turn_scripts.py)
    try:
        messages, state = await gateway.conversations.send(
            conversation_id, token, incoming, charges
        )
    except ConversationNotFound as error:
        raise not_found("no such conversation") from error
    except TokenRejected as error:
        raise forbidden("this token does not belong to this conversation") from error
    return web.json_response({"messages": messages, **state.public()})


@routes.get("/api/conversations/{conversation_id}")
async def get_conversation(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    require_origin(request, gateway.allowed_origins)
    conversation_id = await authorized_conversation(request, gateway)
    after = event_offset(request.query.get("after"))
    return web.json_response(await gateway.conversations.view(conversation_id, after))


@routes.post("/api/conversations/{conversation_id}/typing")
async def post_typing(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    require_origin(request, gateway.allowed_origins)
    conversation_id = await authorized_conversation(request, gateway)
    body = await json_body(request)
    typing = bool(body.get("typing", True))
    await limits_of(request).hit(("typing_per_conversation", f"customer:{conversation_id}"))
    await typing_relay(request).publish(conversation_id, "customer", typing)
    return web.json_response({"ok": True})
