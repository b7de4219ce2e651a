"""The lead-only account admin API (the console's "Accounts" view uses it).

Every route needs a lead's session (401 without a session, 403 for an agent) and an allowed
Origin, like the rest of the agent API. Generated passwords are returned once, in the response
that created them, and never stored or logged in clear. A lead cannot disable or demote the last
active lead (409).

    GET  /api/admin/accounts                          every account
    POST /api/admin/accounts                          add one {login, name, role, skills, capacity}
    POST /api/admin/accounts/{login}/disable          its sessions end at once
    POST /api/admin/accounts/{login}/enable
    POST /api/admin/accounts/{login}/reset-password   a new generated password; sessions end
    POST /api/admin/accounts/{login}/role             {role: agent | lead}
    POST /api/admin/accounts/{login}/skills           {skills: [topic, ...]}
"""

from __future__ import annotations

from aiohttp import web

from bot.web.agent_api import agent_session
from bot.web.auth import (
    MAX_CAPACITY,
    MAX_NAME_CHARS,
    Account,
    AccountError,
    AccountExists,
    Agent,
    LastLead,
    UnknownAccount,
    generate_password,
    validate_agent,
    validate_login,
    validate_role,
    validate_skills,
)
from bot.web.customer_api import json_body
from bot.web.errors import ApiError, bad_request, conflict, forbidden, not_found
from bot.web.gateway import Gateway
from bot.web.passwords import PasswordHashBusy

routes = web.RouteTableDef()


async def lead_session(request: web.Request) -> tuple[Gateway, Agent]:
    """The gateway and the lead of the request's session (401 without one, 403 for agents)."""
    gateway, agent = await agent_session(request)
    if agent.role != "lead":
        raise forbidden("only a support lead can manage accounts")
    return gateway, agent


def _account_error(error: AccountError) -> ApiError:
    if isinstance(error, UnknownAccount):
        return not_found(str(error))
    if isinstance(error, LastLead | AccountExists):
        return conflict(str(error))
    return bad_request(str(error))


def _busy(error: PasswordHashBusy) -> ApiError:
    return ApiError(503, "busy", str(error))


def _login(request: web.Request) -> str:
    try:
        return validate_login(request.match_info["login"])
    except AccountError as error:
        raise bad_request(str(error)) from error


async def _known_skills(gateway: Gateway) -> set[str]:
    return set(await gateway.desk.topics())


@routes.get("/api/admin/accounts")
async def list_accounts(request: web.Request) -> web.Response:
    gateway, _lead = await lead_session(request)
    accounts = await gateway.accounts.list()
    return web.json_response(
        {
            "accounts": [a.public() for a in accounts],
            "roles": ["agent", "lead"],
            "skills": sorted(await _known_skills(gateway)),
        }
    )


@routes.post("/api/admin/accounts")
async def add_account(request: web.Request) -> web.Response:
    gateway, _lead = await lead_session(request)
    body = await json_body(request)
    name = body.get("name")
    capacity = body.get("capacity", 3)
    if not isinstance(name, str) or not name.strip():
        raise bad_request(f"'name' is required (1-{MAX_NAME_CHARS} characters)")
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise bad_request(f"'capacity' is a whole number from 1 to {MAX_CAPACITY}")
    try:
        login = validate_login(body.get("login"))
        agent = validate_agent(
            Agent(
                login=login,
                name=name,
                skills=validate_skills(body.get("skills", []), await _known_skills(gateway)),
                capacity=capacity,
                role=validate_role(body.get("role", "agent")),
            )
        )
        password = generate_password()
        created = await gateway.accounts.create(agent, password)
    except AccountError as error:
        raise _account_error(error) from error
    except PasswordHashBusy as error:
        raise _busy(error) from error
    if not created:
        raise conflict(f"an account {login!r} exists already")
    return web.json_response({"account": Account(agent).public(), "password": password}, status=201)


async def _change(request: web.Request, action: str) -> web.Response:
    gateway, _lead = await lead_session(request)
    login = _login(request)
    body = await json_body(request) if action in ("role", "skills") else {}
    try:
        if action == "disable":
            account = await gateway.accounts.set_disabled(login, True)
        elif action == "enable":
            account = await gateway.accounts.set_disabled(login, False)
        elif action == "role":
            account = await gateway.accounts.set_role(login, validate_role(body.get("role")))
        else:
            skills = validate_skills(body.get("skills"), await _known_skills(gateway))
            account = await gateway.accounts.set_skills(login, skills)
    except AccountError as error:
        raise _account_error(error) from error
    return web.json_response({"account": account.public()})


@routes.post("/api/admin/accounts/{login}/disable")
async def disable(request: web.Request) -> web.Response:
    return await _change(request, "disable")


@routes.post("/api/admin/accounts/{login}/enable")
async def enable(request: web.Request) -> web.Response:
    return await _change(request, "enable")


@routes.post("/api/admin/accounts/{login}/role")
async def set_role(request: web.Request) -> web.Response:
    return await _change(request, "role")


@routes.post("/api/admin/accounts/{login}/skills")
async def set_skills(request: web.Request) -> web.Response:
    return await _change(request, "skills")


@routes.post("/api/admin/accounts/{login}/reset-password")
async def reset_password(request: web.Request) -> web.Response:
    gateway, _lead = await lead_session(request)
    login = _login(request)
    password = generate_password()
    try:
        await gateway.accounts.reset_password(login, password)
    except AccountError as error:
        raise _account_error(error) from error
    except PasswordHashBusy as error:
        raise _busy(error) from error
    account = await gateway.accounts.account(login)
    return web.json_response(
        {"account": account.public() if account else None, "password": password}
    )
