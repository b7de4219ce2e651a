"""The agent HTTP API: login, presence, the queue, and working a ticket.

Every endpoint but ``POST /api/agent/login`` needs an agent session
(``Authorization: Bearer <session token>``). An agent acts on, and reads, only the tickets it
holds now (a support lead may read any; :mod:`bot.web.access`). Agent text is masked (card
numbers) before it is stored or relayed.
After each step the conversation's event stream gets what the customer should see: the agent's
replies, "an agent joined / left" notices, the mode change and, on handback or resolution, what
the bot says next.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from bot.masking import mask_card_numbers
from bot.queue import InvalidInput, MessageTooLarge
from bot.queue.validate import check_message_text
from bot.web.access import holds, may_read
from bot.web.auth import Agent, LoginThrottled
from bot.web.conversations import MAX_TEXT_CHARS
from bot.web.customer_api import CLIENT_ID, event_offset, json_body, optional_str
from bot.web.desk import DISPOSITIONS, TICKET_FILTERS
from bot.web.errors import ApiError, bad_request, forbidden, too_large, unauthorized
from bot.web.events import NotHolder
from bot.web.gateway import GATEWAY, Gateway
from bot.web.limits import client_ip, limits_of
from bot.web.passwords import PasswordHashBusy
from bot.web.security import bearer_token, require_origin
from bot.web.typing_relay import typing_relay

CANNED = Path(__file__).with_name("canned_responses.yml")

routes = web.RouteTableDef()


async def agent_session(request: web.Request) -> tuple[Gateway, Agent]:
    """The gateway and the agent of the request's session (401 without a live one)."""
    gateway = request.app[GATEWAY]
    require_origin(request, gateway.allowed_origins)
    session = await gateway.accounts.session(bearer_token(request))
    if session is None:
        raise unauthorized("log in first: the agent session is missing or expired")
    return gateway, session.agent


def required_str(body: dict[str, Any], name: str, limit: int) -> str:
    value = optional_str(body, name, limit)
    if value is None or not value.strip():
        raise bad_request(f"'{name}' is required")
    return value.strip()


async def held_ticket(gateway: Gateway, agent: Agent, ticket_id: str) -> dict[str, Any]:
    """The ticket, if this agent holds it (403 otherwise, 404 when unknown)."""
    ticket = await gateway.desk.ticket(ticket_id)
    if not holds(agent, ticket):
        raise forbidden("you do not hold this ticket")
    return ticket


@routes.post("/api/agent/login")
async def login(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    require_origin(request, gateway.allowed_origins)
    body = await json_body(request)
    login_name = required_str(body, "login", 200)
    password = required_str(body, "password", 200)
    # Counted atomically before the password is checked: parallel guesses cannot slip through.
    await limits_of(request).hit(
        ("logins_per_ip", client_ip(request)), ("logins_per_account", login_name.lower())
    )
    try:
        session = await gateway.accounts.login(login_name, password)
    except LoginThrottled as error:
        raise ApiError(429, "too_many_attempts", str(error)) from error
    except PasswordHashBusy as error:
        raise ApiError(503, "busy", str(error)) from error
    if session is None:
        raise unauthorized("wrong login or password")
    return web.json_response(
        {"token": session.token, "expires_at": session.expires_at, "agent": session.agent.public()}
    )


@routes.post("/api/agent/logout")
async def logout(request: web.Request) -> web.Response:
    gateway, agent = await agent_session(request)
    await gateway.desk.set_presence(agent, online=False)
    await gateway.accounts.logout(bearer_token(request))
    return web.json_response({"ok": True})


@routes.get("/api/agent/me")
async def me(request: web.Request) -> web.Response:
    gateway, agent = await agent_session(request)
    presence = await gateway.desk.presence(agent)
    tickets = await gateway.desk.agent_tickets(agent)
    return web.json_response({"agent": agent.public(), **presence, "tickets": tickets})


@routes.post("/api/agent/presence")
async def presence(request: web.Request) -> web.Response:
    gateway, agent = await agent_session(request)
    body = await json_body(request)
    if not isinstance(body.get("online"), bool):
        raise bad_request("'online' must be true or false")
    offered = await gateway.desk.set_presence(agent, online=body["online"])
    for ticket in offered:
        await announce_join(gateway, agent, ticket)
    return web.json_response({**await gateway.desk.presence(agent), "assigned": offered})


@routes.get("/api/agent/options")
async def options(request: web.Request) -> web.Response:
    gateway, _agent = await agent_session(request)
    canned = yaml.safe_load(CANNED.read_text()) or []
    return web.json_response(
        {
            "canned_responses": canned,
            "dispositions": list(DISPOSITIONS),
            "topics": await gateway.desk.topics(),
            "ticket_filters": list(TICKET_FILTERS),
        }
    )


@routes.get("/api/tickets")
async def list_tickets(request: web.Request) -> web.Response:
    gateway, agent = await agent_session(request)
    state = request.query.get("state", "open")
    if state not in TICKET_FILTERS:
        raise bad_request(f"'state' must be one of {', '.join(TICKET_FILTERS)}")
    return web.json_response({"tickets": await gateway.desk.list_tickets(state, agent)})


@routes.get("/api/tickets/{ticket_id}")
async def get_ticket(request: web.Request) -> web.Response:
    gateway, agent = await agent_session(request)
    ticket = await gateway.desk.ticket(request.match_info["ticket_id"])
    if not may_read(agent, ticket):  # a former holder reads nothing more, later turns included
        raise forbidden("only the agent holding this ticket now (or a lead) can read it")
    after = event_offset(request.query.get("after"))
    history = await gateway.events.history(ticket["conversation_id"], after)
    return web.json_response({"ticket": ticket, "messages": history})


@routes.post("/api/tickets/claim")
async def claim_next(request: web.Request) -> web.Response:
    gateway, agent = await agent_session(request)
    ticket = await gateway.desk.claim_next(agent)
    if ticket is None:
        return web.json_response({"ticket": None, "message": "no waiting ticket you can take"})
    await announce_join(gateway, agent, ticket)
    return web.json_response({"ticket": ticket})


@routes.post("/api/tickets/{ticket_id}/claim")
async def claim(request: web.Request) -> web.Response:
    gateway, agent = await agent_session(request)
    ticket = await gateway.desk.claim(agent, request.match_info["ticket_id"])
    await announce_join(gateway, agent, ticket)
    return web.json_response({"ticket": ticket})


@routes.post("/api/tickets/{ticket_id}/messages")
async def send_message(request: web.Request) -> web.Response:
    """The reply is checked first (size, holder), then goes to the ticket's log and then to the
    conversation's stream; each write checks atomically that this agent holds the ticket, so
    nothing reaches the customer unless the ticket's log took it."""
    gateway, agent = await agent_session(request)
    body = await json_body(request)
    text = mask_card_numbers(required_str(body, "text", MAX_TEXT_CHARS))
    client_id = optional_str(body, "client_id", 64)
    if client_id is not None and not CLIENT_ID.fullmatch(client_id):
        raise bad_request("'client_id' must be 1-64 letters, digits or _.:-")
    ticket_id = request.match_info["ticket_id"]
    conversation_id = await gateway.desk.conversation_of(ticket_id)
    text = await gateway.conversations.cards.mask(conversation_id, "agent", text)
    checked_message(text)
    client_id = client_id or f"a-{uuid.uuid4().hex}"
    event = {"type": "message", "from": "agent", "text": text, "client_id": client_id}
    event["agent_name"] = agent.name
    holder = (gateway.desk.ticket_key(ticket_id), agent.login)
    await gateway.desk.agent_message(agent, ticket_id, text, client_id)
    try:
        appended = await gateway.events.append(conversation_id, [event], holder=holder)
    except NotHolder as error:
        raise forbidden("you do not hold this ticket") from error
    return web.json_response({"message": appended[0]})


def checked_message(text: str) -> str:
    """The text if it is within the one message limit (413 otherwise, before anything is
    written)."""
    try:
        return check_message_text(text)
    except MessageTooLarge as error:
        raise too_large(str(error), limit=MAX_TEXT_CHARS) from error
    except InvalidInput as error:
        raise bad_request(str(error)) from error


@routes.post("/api/tickets/{ticket_id}/typing")
async def typing(request: web.Request) -> web.Response:
    gateway, agent = await agent_session(request)
    ticket = await held_ticket(gateway, agent, request.match_info["ticket_id"])
    body = await json_body(request)
    conversation_id = ticket["conversation_id"]
    await limits_of(request).hit(("typing_per_conversation", f"agent:{conversation_id}"))
    await typing_relay(request).publish(conversation_id, "agent", bool(body.get("typing", True)))
    return web.json_response({"ok": True})


@routes.post("/api/tickets/{ticket_id}/resolve")
async def resolve(request: web.Request) -> web.Response:
    gateway, agent = await agent_session(request)
    ticket = await held_ticket(gateway, agent, request.match_info["ticket_id"])
    body = await json_body(request)
    disposition = required_str(body, "disposition", 60)
    if disposition not in DISPOSITIONS:
        raise bad_request(f"'disposition' must be one of {', '.join(DISPOSITIONS)}")
    bot_replies = await gateway.desk.resolve(agent, ticket["id"], disposition)
    await announce_leave(gateway, agent, ticket, bot_replies)
    return web.json_response({"ticket": await gateway.desk.ticket(ticket["id"])})


@routes.post("/api/tickets/{ticket_id}/handback")
async def hand_back(request: web.Request) -> web.Response:
    gateway, agent = await agent_session(request)
    ticket = await held_ticket(gateway, agent, request.match_info["ticket_id"])
    bot_replies = await gateway.desk.hand_back(agent, ticket["id"])
    await announce_leave(gateway, agent, ticket, bot_replies)
    return web.json_response({"ticket": await gateway.desk.ticket(ticket["id"])})


@routes.post("/api/tickets/{ticket_id}/transfer")
async def transfer(request: web.Request) -> web.Response:
    gateway, agent = await agent_session(request)
    ticket = await held_ticket(gateway, agent, request.match_info["ticket_id"])
    body = await json_body(request)
    topic = required_str(body, "topic", 60)
    if topic not in await gateway.desk.topics():
        raise bad_request(f"unknown topic {topic!r}")
    await gateway.desk.transfer(agent, ticket["id"], topic)
    notice = {
        "type": "notice",
        "from": "system",
        "text": f"{agent.name} passed you to a colleague who specialises in this. Please stay here.",
    }
    await gateway.events.append(ticket["conversation_id"], [notice])
    await gateway.conversations.sync_mode(ticket["conversation_id"])
    return web.json_response({"ticket": await gateway.desk.ticket(ticket["id"])})


async def announce_join(gateway: Gateway, agent: Agent, ticket: dict[str, Any]) -> None:
    conversation_id = ticket["conversation_id"]
    await gateway.conversations.sync_mode(conversation_id)
    notice = {"type": "notice", "from": "system", "text": f"{agent.name} joined the conversation."}
    await gateway.events.append(conversation_id, [{**notice, "event": "agent_joined"}])


async def announce_leave(
    gateway: Gateway, agent: Agent, ticket: dict[str, Any], bot_replies: list[dict]
) -> None:
    conversation_id = ticket["conversation_id"]
    notice = {"type": "notice", "from": "system", "text": f"{agent.name} left the conversation."}
    await gateway.events.append(conversation_id, [{**notice, "event": "agent_left"}])
    await gateway.conversations.sync_mode(conversation_id)
    await gateway.conversations.relay_bot_replies(conversation_id, bot_replies)
