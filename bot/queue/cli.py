"""Operator CLI for the handoff queue.

    python -m bot.queue.cli [--redis-url URL] [--namespace NS] list [--state STATE] [--limit N]
    python -m bot.queue.cli show TICKET_ID [--messages N]
    python -m bot.queue.cli requeue TICKET_ID [--reason TEXT]
    python -m bot.queue.cli close TICKET_ID [--disposition TEXT]
    python -m bot.queue.cli agents
    python -m bot.queue.cli stats

``--redis-url`` defaults to ``REDIS_URL`` or the launcher's own Redis
(``redis://127.0.0.1:$SUPPORT_REDIS_PORT/0``); ``--namespace`` to ``SUPPORT_QUEUE_NAMESPACE``
(``support``). Exit status: 0 done, 1 refused (unknown ticket, wrong state ...), 2 usage,
3 Redis unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import datetime
from typing import TextIO

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.config import Settings, get_settings
from bot.queue.client import HandoffQueue
from bot.queue.errors import QueueError
from bot.queue.factory import open_queue_url
from bot.queue.records import Ticket, TicketState
from bot.redis_clients import redis_target


def _settings() -> Settings:
    try:
        return get_settings()
    except Exception:  # noqa: BLE001  (settings unreadable: fall back to the documented defaults)
        return Settings.construct()


def _defaults() -> tuple[str, str]:
    settings = _settings()
    url = settings.redis_address()
    return url, settings.queue_namespace


def _ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "-"
    seconds = max(0, int(now - ts))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out
        )


def _customer(t: Ticket) -> str:
    name = t.customer.display_name or t.customer.id
    return f"{name} ({'verified' if t.customer.verified else 'unverified'})"


async def cmd_list(q: HandoffQueue, args: argparse.Namespace, out: TextIO) -> int:
    state = TicketState(args.state) if args.state else None
    tickets = await q.list_tickets(state, limit=args.limit)
    if not tickets:
        print(f"no {state.value if state else 'open'} tickets", file=out)
        return 0
    positions = await q.positions() if state in (None, TicketState.QUEUED) else {}
    now = time.time()
    rows = [
        [
            "ID",
            "STATE",
            "PRIO",
            "TOPIC",
            "AGE",
            "AGENT",
            "POS",
            "ETA",
            "SLA",
            "CONVERSATION",
            "CUSTOMER",
        ]
    ]
    for t in tickets:
        pos = positions.get(t.id)
        rows.append(
            [
                t.id,
                t.state.value,
                str(t.priority),
                t.topic,
                _ago(t.created_at, now),
                t.agent_id or "-",
                str(pos.position) if pos else "-",
                f"{pos.eta_seconds:.0f}s" if pos and pos.eta_seconds is not None else "-",
                "BREACHED" if t.sla_breached else "ok",
                t.conversation_id,
                _customer(t),
            ]
        )
    _table(rows, out)
    print(f"{len(tickets)} ticket(s)", file=out)
    return 0


async def cmd_show(q: HandoffQueue, args: argparse.Namespace, out: TextIO) -> int:
    t = await q.get(args.ticket_id)
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"ticket {t.id}  [{t.state.value}]  priority {t.priority}  topic {t.topic}")
    p(f"  conversation: {t.conversation_id}")
    p(f"  customer:     {t.customer.id}  {_customer(t)}")
    p(f"  reasons:      {', '.join(t.reasons) or '-'}")
    p(f"  agent:        {t.agent_id or '-'}   (last: {t.last_agent_id or '-'})")
    if t.disposition:
        p(f"  disposition:  {t.disposition}")
    sla = "BREACHED" if t.sla_breached else ("met" if t.first_response_at else "running")
    p(f"  SLA:          first response by {_when(t.sla_deadline)}: {sla}")
    if t.previous_ticket_id:
        p(f"  previous:     {t.previous_ticket_id}")
    p(
        f"  counts:       {t.assignments} assignment(s), {t.requeues} requeue(s), {t.transfers} transfer(s)"
    )
    if t.state == TicketState.QUEUED:
        pos, eta = await q.position(t.id)
        p(f"  position:     {pos}  (ETA {'unknown' if eta is None else f'{eta:.0f}s'})")
    p("  times:")
    for name, when in sorted(t.timestamps.items(), key=lambda kv: kv[1]):
        p(f"    {name:<16} {_when(when)}")
    s = t.summary
    p("summary:")
    p(f"  {s.text or '-'}")
    if s.intents:
        p("  intents: " + ", ".join(f"{i.name} {i.confidence:.2f}" for i in s.intents))
    if s.sentiments:
        p("  sentiment per customer message: " + ", ".join(f"{v:+.2f}" for v in s.sentiments))
    if s.transcript:
        p("  transcript:")
        for turn in s.transcript:
            extra = []
            if turn.intent:
                extra.append(f"{turn.intent} {turn.confidence or 0:.2f}")
            if turn.sentiment is not None:
                extra.append(f"sentiment {turn.sentiment:+.2f}")
            tail = f"   [{'; '.join(extra)}]" if extra else ""
            p(f"    {turn.role:>8}: {turn.text}{tail}")
    p("history:")
    for e in await q.audit(t.id):
        details = ", ".join(f"{k}={v}" for k, v in e.fields.items() if k != "ticket" and v)
        p(f"  {_when(e.timestamp)}  {e.event:<16} {details}")
    messages = await q.read_messages(t.id)
    p(f"messages ({len(messages)}):")
    for m in messages[-args.messages :] if args.messages else []:
        p(f"  {_when(m.timestamp)}  {m.role}:{m.sender_id}: {m.text}")
    return 0


async def cmd_requeue(q: HandoffQueue, args: argparse.Namespace, out: TextIO) -> int:
    t = await q.requeue(args.ticket_id, reason=args.reason)
    where = f"assigned to {t.agent_id}" if t.agent_id else "waiting at the front of its queue"
    print(f"requeued {t.id} (taken from {t.last_agent_id}); now {where}", file=out)
    return 0


async def cmd_close(q: HandoffQueue, args: argparse.Namespace, out: TextIO) -> int:
    t = await q.close(args.ticket_id, disposition=args.disposition)
    print(f"closed {t.id} as {t.state.value} ({t.disposition})", file=out)
    return 0


async def cmd_agents(q: HandoffQueue, args: argparse.Namespace, out: TextIO) -> int:
    agents = await q.agents()
    if not agents:
        print("no agents registered", file=out)
        return 0
    now = time.time()
    rows = [["AGENT", "ONLINE", "MODE", "LOAD", "SKILLS", "LEASE", "TICKETS"]]
    for a in agents:
        lease = f"{a.lease_expires_at - now:.0f}s left" if a.online and a.lease_expires_at else "-"
        rows.append(
            [
                a.id,
                "yes" if a.online else "no",
                "auto" if a.auto_assign else "pull",
                f"{a.load}/{a.capacity}",
                ",".join(a.skills),
                lease,
                " ".join(a.tickets) or "-",
            ]
        )
    _table(rows, out)
    return 0


async def cmd_stats(q: HandoffQueue, args: argparse.Namespace, out: TextIO) -> int:
    s = await q.stats()
    print(
        f"waiting: {s['waiting_total']}  open: {s['open']}  closed: {s['closed']}  agents online: {s['agents_online']}",
        file=out,
    )
    for topic, n in sorted(s["waiting"].items()):
        print(f"  {topic}: {n} waiting", file=out)
    return 0


COMMANDS = {
    "list": cmd_list,
    "show": cmd_show,
    "requeue": cmd_requeue,
    "close": cmd_close,
    "agents": cmd_agents,
    "stats": cmd_stats,
}


def build_parser() -> argparse.ArgumentParser:
    url, namespace = _defaults()
    parser = argparse.ArgumentParser(
        prog="python -m bot.queue.cli", description="Inspect and operate the handoff queue."
    )
    parser.add_argument("--redis-url", default=url, help=f"Redis to use (default {url})")
    parser.add_argument(
        "--namespace", default=namespace, help=f"key namespace (default {namespace})"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("list", help="list tickets (open ones by default)")
    p.add_argument("--state", choices=[s.value for s in TicketState], help="only this state")
    p.add_argument("--limit", type=int, default=200, help="at most this many (default 200)")
    p = sub.add_parser("show", help="a ticket with its summary, history and messages")
    p.add_argument("ticket_id")
    p.add_argument("--messages", type=int, default=20, help="last N messages to print (default 20)")
    p = sub.add_parser("requeue", help="take an assigned ticket back to the front of its queue")
    p.add_argument("ticket_id")
    p.add_argument("--reason", default="requeued by operator")
    p = sub.add_parser("close", help="close an open ticket (as resolved)")
    p.add_argument("ticket_id")
    p.add_argument("--disposition", default="closed by operator")
    sub.add_parser("agents", help="agents, presence and load")
    sub.add_parser("stats", help="counts per topic")
    return parser


async def run(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    q = open_queue_url(args.redis_url, _settings(), namespace=args.namespace, max_connections=4)
    try:
        return await COMMANDS[args.command](q, args, out)
    except QueueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (RedisConnectionError, RedisTimeoutError, OSError) as error:
        where = redis_target(_settings(), args.redis_url).describe()
        print(f"error: cannot reach Redis at {where}: {error}", file=sys.stderr)
        return 3
    finally:
        await q.aclose()


def main(argv: list[str] | None = None) -> None:
    sys.exit(asyncio.run(run(argv)))


if __name__ == "__main__":
    main()
