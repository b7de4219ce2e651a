"""Agent accounts from the command line, and the accounts the launcher sets up on start.

    python -m bot.accounts add LOGIN --name NAME [--role agent|lead] [--skills a,b] [--capacity N]
    python -m bot.accounts list [--json]
    python -m bot.accounts disable LOGIN | enable LOGIN
    python -m bot.accounts reset-password LOGIN
    python -m bot.accounts set-role LOGIN agent|lead
    python -m bot.accounts set-skills LOGIN SKILL[,SKILL...]

``add`` and ``reset-password`` generate a random password and print it once; ``--password-stdin``
reads it from standard input instead (one line, for scripts) and ``--prompt`` asks for it without
echo. A password never comes from the command line, so it stays out of shell history and ``ps``.
Skills are topic names of the escalation policy. Disabling an account or resetting its password
ends its sessions; the last active lead cannot be disabled or demoted.

The store is the gateway's (:class:`bot.web.auth.AgentAccounts`) on ``--redis-url`` (default
``REDIS_URL``, else the launcher's own Redis) under ``--namespace``. Exit status: 0 done,
1 refused (unknown or existing account, last lead), 2 usage or invalid value, 3 Redis unreachable.

For the launcher: :func:`prepare_accounts` (synchronous) returns the lines to print once at start:
in demo mode the demo lead and its published password; otherwise, when there is no active lead,
the first lead it has just created with a random password (:func:`ensure_first_lead`).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from typing import TextIO

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.config import Settings, get_settings, redact_url
from bot.escalation import PolicyError, load_policy
from bot.redis_clients import async_redis
from bot.web.auth import (
    ROLES,
    AccountError,
    Agent,
    AgentAccounts,
    InvalidAccount,
    ensure_demo_agent,
    generate_password,
    validate_login,
    validate_password,
    validate_skills,
)

FIRST_LEAD_NAME = "Support lead"


def known_skills(settings: Settings) -> list[str]:
    """The topics of the escalation policy (what the desk routes by), sorted."""
    policy = load_policy(settings.escalation_policy)
    return sorted({policy.default_topic, *(rule.topic for rule in policy.sensitive)})


def redis_url(settings: Settings) -> str:
    return settings.redis_address()


async def ensure_first_lead(redis: Redis, settings: Settings) -> str | None:
    """Without an active lead, make ``settings.first_lead_login`` one with a random password.

    Returns that password (to print once), or None when an active lead exists. An existing
    account of that login (say, a disabled one) is enabled, made a lead and given the password.
    """
    accounts = AgentAccounts.from_settings(redis, settings)
    if await accounts.has_active_lead():
        return None
    login = validate_login(settings.first_lead_login)
    password = generate_password()
    agent = Agent(
        login=login, name=FIRST_LEAD_NAME, skills=known_skills(settings), capacity=3, role="lead"
    )
    if not await accounts.create(agent, password):
        await accounts.reset_password(login, password)
        await accounts.set_disabled(login, False)
        await accounts.set_role(login, "lead")
    return password


async def seed_demo(redis: Redis, settings: Settings) -> list[str]:
    """Demo mode: the demo lead with its published password; the lines that say so."""
    login, password = await ensure_demo_agent(AgentAccounts.from_settings(redis, settings))
    return [
        "  DEMO MODE: seeded the demo lead with a PUBLISHED password; never expose this stack.",
        f"  demo agent:     {login} / password {password}",
    ]


async def account_lines(redis: Redis, settings: Settings, demo: bool) -> list[str]:
    lines = await seed_demo(redis, settings) if demo else []
    password = await ensure_first_lead(redis, settings)
    if password is not None:
        lines += [
            f"  first lead:     {settings.first_lead_login} / password {password}",
            "                  (shown once: log in, then add agents in the console's Accounts"
            " view or with python -m bot.accounts)",
        ]
    return lines


def prepare_accounts(url: str, settings: Settings, demo: bool = False) -> list[str]:
    """For the launcher, once Redis is up: the account lines to print (see the module doc)."""

    async def run() -> list[str]:
        client = async_redis(settings, url, decode_responses=True, socket_connect_timeout=5)
        try:
            return await account_lines(client, settings, demo)
        finally:
            await client.close()

    return asyncio.run(run())


# -- the command line -------------------------------------------------------------------------


def _read_password(args: argparse.Namespace, stdin: TextIO) -> tuple[str, bool]:
    """(password, generated?) as the flags ask."""
    if args.password_stdin:
        return validate_password(stdin.readline().rstrip("\r\n")), False
    if args.prompt:
        first = getpass.getpass("New password: ")
        if getpass.getpass("Repeat it: ") != first:
            raise InvalidAccount("the two passwords differ")
        return validate_password(first), False
    return generate_password(), True


def _skills(text: str, settings: Settings) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    return validate_skills(names, known_skills(settings))


async def cmd_add(accounts: AgentAccounts, args: argparse.Namespace, io: _IO) -> int:
    agent = Agent(
        login=validate_login(args.login),
        name=args.name,
        skills=_skills(args.skills, io.settings),
        capacity=args.capacity,
        role=args.role,
    )
    password, generated = _read_password(args, io.stdin)
    if not await accounts.create(agent, password):
        print(f"error: an account {agent.login!r} exists already", file=io.err)
        return 1
    print(f"added {agent.login} ({agent.role})", file=io.out)
    if generated:
        print(f"password (shown once): {password}", file=io.out)
    return 0


async def cmd_list(accounts: AgentAccounts, args: argparse.Namespace, io: _IO) -> int:
    found = await accounts.list()
    if args.json:
        print(json.dumps([a.public() for a in found], indent=1), file=io.out)
        return 0
    rows = [["LOGIN", "NAME", "ROLE", "STATE", "CAPACITY", "SKILLS"]]
    for a in found:
        state = "disabled" if a.disabled else "active"
        rows.append(
            [a.agent.login, a.agent.name, a.agent.role, state, str(a.agent.capacity)]
            + [",".join(a.agent.skills) or "-"]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=io.out)
    if not found:
        print("(no accounts)", file=io.out)
    return 0


async def cmd_disable(accounts: AgentAccounts, args: argparse.Namespace, io: _IO) -> int:
    await accounts.set_disabled(validate_login(args.login), True)
    print(f"disabled {args.login}; its sessions have ended", file=io.out)
    return 0


async def cmd_enable(accounts: AgentAccounts, args: argparse.Namespace, io: _IO) -> int:
    await accounts.set_disabled(validate_login(args.login), False)
    print(f"enabled {args.login}", file=io.out)
    return 0


async def cmd_reset_password(accounts: AgentAccounts, args: argparse.Namespace, io: _IO) -> int:
    login = validate_login(args.login)
    if await accounts.account(login) is None:
        print(f"error: no account {args.login!r}", file=io.err)
        return 1
    password, generated = _read_password(args, io.stdin)
    await accounts.reset_password(login, password)
    print(f"new password for {login}; its sessions have ended", file=io.out)
    if generated:
        print(f"password (shown once): {password}", file=io.out)
    return 0


async def cmd_set_role(accounts: AgentAccounts, args: argparse.Namespace, io: _IO) -> int:
    account = await accounts.set_role(validate_login(args.login), args.role)
    print(f"{account.agent.login} is now {account.agent.role}", file=io.out)
    return 0


async def cmd_set_skills(accounts: AgentAccounts, args: argparse.Namespace, io: _IO) -> int:
    skills = _skills(args.skills, io.settings)
    account = await accounts.set_skills(validate_login(args.login), skills)
    print(f"{account.agent.login} skills: {','.join(account.agent.skills) or '-'}", file=io.out)
    return 0


COMMANDS = {
    "add": cmd_add,
    "list": cmd_list,
    "disable": cmd_disable,
    "enable": cmd_enable,
    "reset-password": cmd_reset_password,
    "set-role": cmd_set_role,
    "set-skills": cmd_set_skills,
}


class _IO:
    def __init__(self, settings: Settings, out: TextIO, err: TextIO, stdin: TextIO) -> None:
        self.settings, self.out, self.err, self.stdin = settings, out, err, stdin


def _password_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin (one line)"
    )
    group.add_argument("--prompt", action="store_true", help="ask for the password (no echo)")


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot.accounts",
        description="Manage agent accounts. Without --password-stdin or --prompt a random "
        "password is generated and printed once.",
    )
    url = redis_url(settings)
    parser.add_argument("--redis-url", default=url, help="Redis to use (default: REDIS_URL)")
    parser.add_argument("--namespace", default=settings.queue_namespace, help="key namespace")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("add", help="add an account")
    p.add_argument("login", help="the login, e.g. an email address")
    p.add_argument("--name", required=True, help="the name customers and colleagues see")
    p.add_argument("--role", choices=ROLES, default="agent")
    p.add_argument("--skills", default="", help="comma-separated topics (default: none)")
    p.add_argument("--capacity", type=int, default=3, help="chats at once (default 3)")
    _password_flags(p)
    p = sub.add_parser("list", help="list accounts")
    p.add_argument("--json", action="store_true", help="as JSON")
    for name, text in (("disable", "disable (ends its sessions)"), ("enable", "enable again")):
        sub.add_parser(name, help=text).add_argument("login")
    p = sub.add_parser("reset-password", help="set a new password (ends its sessions)")
    p.add_argument("login")
    _password_flags(p)
    p = sub.add_parser("set-role", help="make an account an agent or a lead")
    p.add_argument("login")
    p.add_argument("role", choices=ROLES)
    p = sub.add_parser("set-skills", help="replace an account's skills")
    p.add_argument("login")
    p.add_argument("skills", help="comma-separated topics ('' for none)")
    return parser


async def run(
    argv: list[str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stdin: TextIO | None = None,
    settings: Settings | None = None,
) -> int:
    settings = settings or get_settings()
    args = build_parser(settings).parse_args(argv)
    io = _IO(settings, out or sys.stdout, err or sys.stderr, stdin or sys.stdin)
    client = async_redis(settings, args.redis_url, decode_responses=True, socket_connect_timeout=5)
    settings = settings.copy(update={"queue_namespace": args.namespace})
    try:
        return await COMMANDS[args.command](AgentAccounts.from_settings(client, settings), args, io)
    except InvalidAccount as error:
        print(f"error: {error}", file=io.err)
        return 2
    except AccountError as error:
        print(f"error: {error}", file=io.err)
        return 1
    except PolicyError as error:
        print(f"error: cannot read the topics of the escalation policy: {error}", file=io.err)
        return 2
    except (RedisConnectionError, RedisTimeoutError, OSError) as error:
        print(f"error: cannot reach Redis at {redact_url(args.redis_url)}: {error}", file=io.err)
        return 3
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> None:
    sys.exit(asyncio.run(run(argv)))


if __name__ == "__main__":
    main()
