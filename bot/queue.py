"""The handoff queue: tickets on Redis that no agent loses and no two agents take.

An async library on ``redis.asyncio`` (redis-py 4.6). Every state change is one Lua script (one
round trip, atomic: no other client sees a half-done step), and every change is appended to the
ticket's audit stream and to the queue-wide event stream. The client must be created with
``decode_responses=True`` (:meth:`HandoffQueue.from_url` does that).

Quick tour::

    queue = HandoffQueue.from_url("redis://127.0.0.1:6390/0")
    ticket = await queue.enqueue("conv-1", Customer("c-9", "Ada", verified=True),
                                 reasons=["low_confidence"], priority=5, topic="cards",
                                 summary=Summary(text="card declined twice"))
    await queue.agent_online("agent-7", skills=["cards", "payments"], capacity=3)
    # agent-7 was free and fits: the ticket is assigned at once, and agent-7's inbox says so
    events = await queue.read_agent_events("agent-7", after="0-0", block_ms=5000)
    await queue.send_message(ticket.id, "agent", "agent-7", "Hi Ada, I'm on it", "cm-1")
    await queue.resolve(ticket.id, "agent-7", disposition="card unblocked")

Lifecycle (see ``docs/queue.md``)::

    enqueue ─> queued ──(assign: auto / claim / claim_next / transfer to agent)──> assigned
                 ^  │                                                              │
                 │  └─> abandoned (customer left)                                  ├─> resolved
                 └──── requeue / transfer to topic / agent's lease lapsed ─────────┤─> returned_to_bot
                                                                                   └─> abandoned

Routing. A ticket waits in the sorted set of its topic, ordered by priority (9 first), then
tickets that were taken back from an agent (requeue, lapsed lease, transfer) ahead of the rest,
then first-in-first-out. Agents register with skills (topics; ``"*"`` takes every topic), a
capacity (concurrent chats) and ``auto_assign``:

* auto-assign agents (the default) are *pushed* work: whenever a ticket is queued and a fitting
  agent has room, or an agent comes online or frees capacity, the script that made the change
  assigns the oldest ticket of the highest priority the agent can take, in the same atomic step,
  and appends an ``assigned`` event to the agent's inbox stream. So nothing waits while a fitting
  auto-assign agent is free and online. The least loaded agent (then the one idle longest) wins.
* pull agents (``auto_assign=False``) take work with :meth:`HandoffQueue.claim_next` (best
  fitting ticket) or :meth:`HandoffQueue.claim` (a given ticket).

Presence is a lease: :meth:`agent_online` and :meth:`heartbeat` set it to now + ``lease_seconds``.
An agent whose lease has lapsed is offline: it gets no new tickets, its own calls to heartbeat /
claim fail with :class:`AgentOffline`, and its tickets go back to the front of their queue (then to
another free agent) when the sweeper runs. **Who runs the sweeper:** the web gateway runs
:meth:`HandoffQueue.run_sweeper` as a background task (any number of processes may run it; each
sweep is one atomic script). It also flags tickets whose first-response SLA passed
(``sla_breached``; the ``sla_breached`` event lets an operator or policy re-route them with
:meth:`requeue` or :meth:`transfer`).

A customer returning to a resolved conversation (a new ticket for the same conversation id) goes
straight back to the agent who handled it last only if that agent is online, has room and takes
pushed work; otherwise it is queued like any other: it is never routed to an offline agent.

Messages. Each ticket has a message stream. :meth:`send_message` carries a client message id: a
retry with the same id (same role and sender) returns the first message, never a second copy.
:meth:`read_messages` resumes after any stream id (``after``), optionally blocking.

Waiting customers. :meth:`position` (one cheap call) and :meth:`positions` (every waiting ticket,
one call) give the place in the topic's queue and an ETA from recent handling times and the
capacity of online agents. :meth:`watch_positions` pushes changes: it follows the event stream and
yields only the positions that changed.

Notifications. Per agent: ``<ns>:q:a:<agent>:inbox`` stream (``assigned``, ``unassigned``,
``resolved``, ``returned_to_bot``, ``abandoned``, ``sla_breached``, ``offline``), read with
:meth:`read_agent_events`. Per ticket: the audit stream (:meth:`read_ticket_events`, :meth:`audit`).
Queue-wide: ``<ns>:q:events`` (:meth:`read_events`).

Errors are :class:`QueueError` subclasses with readable messages; a refused call changes nothing
(except the documented case of a lapsed agent, which is taken offline when it shows up).

API (all coroutines; the table with errors is in ``docs/queue.md``):

* tickets: ``enqueue``, ``get``, ``get_many``, ``open_ticket_for``, ``last_ticket_for``,
  ``list_tickets``, ``queued``, ``topics``, ``audit``, ``stats``
* agents: ``agent_online``, ``heartbeat``, ``agent_offline``, ``agent``, ``agents``
* routing: ``claim_next``, ``claim``, ``requeue``, ``transfer``
* closing: ``resolve``, ``return_to_bot``, ``abandon`` (customer left), ``close`` (operator)
* messages: ``send_message``, ``read_messages``, ``read_many``
* notifications: ``read_agent_events``, ``read_ticket_events``, ``read_events``
* waiting customers: ``position``, ``positions``, ``watch_positions``
* upkeep: ``reap_expired``, ``run_sweeper``

Throughput. Scripts that concurrent callers start in the same event-loop turn are sent as one
pipeline (``autobatch=True``): one write, replies parsed in one pass, each call still its own
atomic script with its own result or error. Tickets come back from the scripts as one string.

Needs one Redis server (not Redis Cluster): scripts build key names from the namespace.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.tickets import (
    SENDER_ROLES,
    AuditEvent,
    Customer,
    Message,
    Summary,
    Ticket,
    TicketState,
)

log = logging.getLogger(__name__)

__all__ = [
    "AgentAtCapacity",
    "AgentEvent",
    "AgentInfo",
    "AgentLacksSkill",
    "AgentNotFound",
    "AgentOffline",
    "HandoffQueue",
    "InvalidInput",
    "InvalidTransition",
    "MessageTooLarge",
    "NotAssignee",
    "QueueError",
    "QueuePosition",
    "SweepResult",
    "TicketNotFound",
]

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class QueueError(Exception):
    """Base class of every error the queue raises on purpose."""


class InvalidInput(QueueError, ValueError):
    """An argument is malformed (empty id, priority out of range, bad topic name ...)."""


class MessageTooLarge(InvalidInput):
    """A message is longer than the queue's ``max_message_bytes``."""


class TicketNotFound(QueueError, LookupError):
    """No ticket has this id."""


class AgentNotFound(QueueError, LookupError):
    """No agent has registered under this id."""


class AgentOffline(QueueError):
    """The agent is offline (never came online, went offline, or its lease lapsed)."""


class AgentAtCapacity(QueueError):
    """The agent already has as many open tickets as its capacity allows."""


class AgentLacksSkill(QueueError):
    """The agent does not take tickets of this topic."""


class InvalidTransition(QueueError):
    """The ticket is not in a state that allows this action (e.g. resolving a queued ticket)."""


class NotAssignee(QueueError):
    """The agent acting on the ticket is not the agent it is assigned to."""


_ERROR_CODES: dict[str, type[QueueError]] = {
    "QNOTFOUND": TicketNotFound,
    "QNOAGENT": AgentNotFound,
    "QOFFLINE": AgentOffline,
    "QCAPACITY": AgentAtCapacity,
    "QSKILL": AgentLacksSkill,
    "QSTATE": InvalidTransition,
    "QNOTASSIGNEE": NotAssignee,
    "QINPUT": InvalidInput,
}

# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


class QueuePosition(NamedTuple):
    """Place of a ticket in its topic's queue (1 = next) and the estimated wait in seconds.

    ``position`` is 0 once an agent has the ticket, None when it is closed. ``eta_seconds`` is
    None when it cannot be estimated (no agent for the topic is online) or the ticket is closed.
    """

    position: int | None
    eta_seconds: float | None


@dataclass(frozen=True)
class AgentInfo:
    """An agent as the queue sees it."""

    id: str
    skills: tuple[str, ...]
    capacity: int
    auto_assign: bool
    online: bool
    load: int
    tickets: tuple[str, ...] = ()
    lease_expires_at: float | None = None
    last_assigned_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "skills": list(self.skills),
            "capacity": self.capacity,
            "auto_assign": self.auto_assign,
            "online": self.online,
            "load": self.load,
            "tickets": list(self.tickets),
            "lease_expires_at": self.lease_expires_at,
            "last_assigned_at": self.last_assigned_at,
        }


@dataclass(frozen=True)
class AgentEvent:
    """One entry of an agent's inbox stream (``type``: assigned, unassigned, resolved ...)."""

    id: str
    type: str
    ticket_id: str | None
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def timestamp(self) -> float:
        return int(self.id.split("-", 1)[0]) / 1000.0


@dataclass(frozen=True)
class SweepResult:
    """What one sweep did: agents taken offline, tickets requeued, tickets flagged for SLA."""

    lapsed_agents: tuple[str, ...] = ()
    requeued: tuple[str, ...] = ()
    sla_breached: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# Lua
# --------------------------------------------------------------------------------------------
# Every script starts with this prelude, with the queue's settings filled in (key prefix,
# event-stream length, closed-ticket TTL in ms (0: keep), lease in ms, default handling time in
# ms), so a call sends only its own arguments: A[1], A[2], ... (ARGV).
#
# A script validates everything before its first write, so a refused call changes nothing.
# Times come from the server's clock (TIME), so clients' clocks do not matter.

_PRELUDE = r"""
local P = '__PREFIX__'
local EVMAX = '__EVENTS_MAXLEN__'
local TTL_MS = __CLOSED_TTL_MS__
local LEASE_MS = __LEASE_MS__
local DEFAULT_HANDLE_MS = __DEFAULT_HANDLE_MS__
local A = ARGV
local T = redis.call('TIME')
local NOW = tonumber(T[1]) * 1000 + math.floor(tonumber(T[2]) / 1000)
local BASE = 1099511627776        -- 2^40: queue scores are (9-prio)*2^41 + (front?0:2^40) + seq
local LOADW = 8796093022208       -- 2^43: free-agent scores are load%*2^43 + last assignment ms

local function fail(code, msg) return redis.error_reply(code .. ' ' .. msg) end
local function tkey(id) return P .. 't:' .. id end
local function akey(a) return P .. 'a:' .. a end
-- a ticket hash as one string, fields and values joined by NUL (no stored value contains NUL):
-- one bulk reply instead of ~50 is much cheaper for the client to parse
local function ticket_reply(tid) return table.concat(redis.call('HGETALL', tkey(tid)), '\0') end

local function split(s)
  local out = {}
  if s then for part in string.gmatch(s, '[^,]+') do out[#out + 1] = part end end
  return out
end

local function qscore(prio, seq, front)
  local s = (9 - tonumber(prio)) * 2 * BASE + tonumber(seq)
  if not front then s = s + BASE end
  return string.format('%.0f', s)
end

-- audit: the ticket's own stream and the queue-wide one
local function emit(tid, event, extra)
  local args = {'event', event}
  if tid then args[#args + 1] = 'ticket'; args[#args + 1] = tid end
  if extra then for i = 1, #extra do args[#args + 1] = extra[i] end end
  if tid then redis.call('XADD', tkey(tid) .. ':audit', '*', unpack(args)) end
  redis.call('XADD', P .. 'events', 'MAXLEN', '~', EVMAX, '*', unpack(args))
end

local function notify(agent, kind, tid, extra)
  local args = {'type', kind, 'ticket', tid or ''}
  if extra then for i = 1, #extra do args[#args + 1] = extra[i] end end
  redis.call('XADD', akey(agent) .. ':inbox', 'MAXLEN', '~', 1000, '*', unpack(args))
end

local function lease_ok(a)
  local exp = redis.call('ZSCORE', P .. 'presence', a)
  return exp and tonumber(exp) >= NOW
end

-- keep <P>free (online auto-assign agents with room, least loaded / idle longest first) true
local function refresh_free(a)
  local h = redis.call('HMGET', akey(a), 'capacity', 'auto', 'online', 'last_assign')
  local cap = tonumber(h[1] or 0)
  local load = redis.call('SCARD', akey(a) .. ':tickets')
  if h[2] == '1' and h[3] == '1' and load < cap then
    local pct = math.floor(load * 100 / cap)
    redis.call('ZADD', P .. 'free', string.format('%.0f', pct * LOADW + tonumber(h[4] or 0)), a)
  else
    redis.call('ZREM', P .. 'free', a)
  end
end

local function has_skill(a, topic)
  return redis.call('SISMEMBER', P .. 'skill:' .. topic, a) == 1
      or redis.call('SISMEMBER', P .. 'skill:*', a) == 1
end

-- the free auto-assign agent that should get a ticket of this topic (nil: none)
local function best_agent(topic, exclude)
  local start = 0
  while true do
    local chunk = redis.call('ZRANGE', P .. 'free', start, start + 31)
    if #chunk == 0 then return nil end
    for _, a in ipairs(chunk) do
      if a ~= exclude and has_skill(a, topic) and lease_ok(a) then return a end
    end
    start = start + 32
  end
end

local function assign(tid, agent, how, topic, pull)
  redis.call('ZREM', P .. 'q:' .. topic, tid)
  redis.call('HSET', tkey(tid), 'state', 'assigned', 'agent', agent, 'ts_assigned', NOW)
  redis.call('HINCRBY', tkey(tid), 'assignments', 1)
  redis.call('SADD', akey(agent) .. ':tickets', tid)
  redis.call('HSET', akey(agent), 'last_assign', NOW)
  emit(tid, 'assigned', {'agent', agent, 'how', how, 'topic', topic})
  notify(agent, 'assigned', tid, {'how', how, 'topic', topic})
  if not pull then refresh_free(agent) end  -- a pull agent is never in <P>free
end

-- give a queued ticket to the best free fitting agent, if any
local function dispatch_ticket(tid, exclude, topic)
  topic = topic or redis.call('HGET', tkey(tid), 'topic')
  local a = best_agent(topic, exclude)
  if a then assign(tid, a, 'auto', topic) end
  return a
end

-- the best queued ticket for an agent with these skills (nil: none)
local function best_head(skills, exclude)
  local topics = split(skills)
  for _, s in ipairs(topics) do
    if s == '*' then topics = redis.call('SMEMBERS', P .. 'topics'); break end
  end
  local best, bestscore, besttopic = nil, nil, nil
  for _, t in ipairs(topics) do
    local r = redis.call('ZRANGE', P .. 'q:' .. t, 0, 1, 'WITHSCORES')
    local i = 1
    if r[1] == exclude then i = 3 end
    if r[i] then
      local sc = tonumber(r[i + 1])
      if best == nil or sc < bestscore then best, bestscore, besttopic = r[i], sc, t end
    end
  end
  return best, besttopic
end

-- backlog pull: fill an online auto-assign agent up to its capacity
local function dispatch_agent(a, exclude)
  local h = redis.call('HMGET', akey(a), 'skills', 'capacity', 'auto', 'online')
  if h[3] ~= '1' or h[4] ~= '1' or not lease_ok(a) then redis.call('ZREM', P .. 'free', a); return end
  local cap = tonumber(h[2])
  local load = redis.call('SCARD', akey(a) .. ':tickets')
  while load < cap do
    local tid, topic = best_head(h[1], exclude)
    if not tid then break end
    assign(tid, a, 'backlog', topic)
    load = load + 1
  end
  refresh_free(a)
end

-- take a ticket from its agent and put it at the front of its topic's queue (no dispatch)
local function back_to_queue(tid, from, event, reason)
  local h = redis.call('HMGET', tkey(tid), 'priority', 'id', 'topic', 'qseq')
  redis.call('SREM', akey(from) .. ':tickets', tid)
  redis.call('HDEL', tkey(tid), 'agent')
  redis.call('HSET', tkey(tid), 'state', 'queued', 'last_agent', from, 'ts_queued', NOW,
             'ts_' .. event, NOW)
  redis.call('HINCRBY', tkey(tid), 'requeues', 1)
  redis.call('ZADD', P .. 'q:' .. h[3], qscore(h[1], h[4], true), tid)
  emit(tid, event, {'agent', from, 'reason', reason, 'topic', h[3]})
  notify(from, 'unassigned', tid, {'reason', reason})
  return qscore(h[1], h[4], true)
end

-- take an agent offline: out of presence and routing, its tickets to the front of their queues,
-- then to other free agents (highest priority / oldest first)
local function go_offline(a, reason)
  redis.call('ZREM', P .. 'presence', a)
  redis.call('ZREM', P .. 'free', a)
  for _, s in ipairs(split(redis.call('HGET', akey(a), 'skills'))) do
    redis.call('SREM', P .. 'skill:' .. s, a)
  end
  redis.call('HSET', akey(a), 'online', '0', 'ts_offline', NOW)
  local tickets = redis.call('SMEMBERS', akey(a) .. ':tickets')
  local scored = {}
  for _, tid in ipairs(tickets) do
    scored[#scored + 1] = {tid, back_to_queue(tid, a, 'requeued', reason)}
  end
  table.sort(scored, function(x, y) return tonumber(x[2]) < tonumber(y[2]) end)
  emit(nil, 'agent_offline', {'agent', a, 'reason', reason, 'requeued', #scored})
  notify(a, 'offline', '', {'reason', reason})
  local out = {}
  for _, e in ipairs(scored) do
    out[#out + 1] = e[1]
    dispatch_ticket(e[1], a)
  end
  return out
end

-- an agent that may act now: known, present and with an unexpired lease (else an error reply;
-- an agent whose lease lapsed is taken offline on the spot)
local function check_agent(a)
  local exp = redis.call('ZSCORE', P .. 'presence', a)
  if not exp then
    if redis.call('EXISTS', akey(a)) == 0 then
      return fail('QNOAGENT', 'agent ' .. a .. ' is not registered; call agent_online first')
    end
    return fail('QOFFLINE', 'agent ' .. a .. ' is offline; call agent_online first')
  end
  if tonumber(exp) < NOW then
    go_offline(a, 'lease_expired')
    return fail('QOFFLINE', 'agent ' .. a .. ' missed its heartbeat (lease expired); its ' ..
                'tickets went back to the queue; call agent_online again')
  end
  return nil
end

local function expire_ticket(tid)
  if TTL_MS > 0 then
    for _, k in ipairs({tkey(tid), tkey(tid) .. ':msgs', tkey(tid) .. ':cmid',
                        tkey(tid) .. ':audit'}) do
      redis.call('PEXPIRE', k, TTL_MS)
    end
  end
end

-- close an open ticket (h = HMGET state, agent, topic, conv, ts_assigned)
local function close_ticket(tid, h, newstate, disposition, by)
  local state, agent, topic, conv = h[1], h[2], h[3], h[4]
  if state == 'queued' then redis.call('ZREM', P .. 'q:' .. topic, tid) end
  local fields = {'state', newstate, 'ts_' .. newstate, NOW, 'disposition', disposition,
                  'closed_by', by}
  if state == 'assigned' and agent then
    fields[#fields + 1] = 'last_agent'; fields[#fields + 1] = agent
  end
  redis.call('HSET', tkey(tid), unpack(fields))
  redis.call('ZREM', P .. 'open', tid)
  redis.call('ZADD', P .. 'closed', NOW, tid)
  redis.call('ZREM', P .. 'sla', tid)
  if redis.call('GET', P .. 'conv:' .. conv) == tid then redis.call('DEL', P .. 'conv:' .. conv) end
  redis.call('SET', P .. 'conv_last:' .. conv, tid)
  emit(tid, newstate, {'agent', agent or '', 'disposition', disposition, 'by', by, 'topic', topic})
  if state == 'assigned' and agent then
    redis.call('SREM', akey(agent) .. ':tickets', tid)
    local hk = P .. 'handle:' .. topic
    redis.call('LPUSH', hk, NOW - tonumber(h[5] or NOW))
    redis.call('LTRIM', hk, 0, 49)
    notify(agent, newstate, tid, {'by', by})
    dispatch_agent(agent, nil)
  end
  expire_ticket(tid)
end

-- estimated wait for the n-th in line of a topic: n * mean handling time / online capacity
local function topic_rate(topic)
  local slots = 0
  for _, a in ipairs(redis.call('SUNION', P .. 'skill:' .. topic, P .. 'skill:*')) do
    if lease_ok(a) then slots = slots + tonumber(redis.call('HGET', akey(a), 'capacity') or 0) end
  end
  local times = redis.call('LRANGE', P .. 'handle:' .. topic, 0, -1)
  local handle = DEFAULT_HANDLE_MS
  if #times > 0 then
    local sum = 0
    for _, v in ipairs(times) do sum = sum + tonumber(v) end
    handle = sum / #times
  end
  return slots, handle
end
"""

_ENQUEUE = r"""
-- A: conv, customer_json, reasons_json, priority, topic, summary_json, sla_ms, prefer_agent
local conv, topic, prio = A[1], A[5], A[4]
local existing = redis.call('GET', P .. 'conv:' .. conv)
if existing then return {1, ticket_reply(existing)} end
local n = redis.call('INCR', P .. 'seq')
local tid = 'T' .. n
local deadline = NOW + tonumber(A[7])
local prev = redis.call('GET', P .. 'conv_last:' .. conv)
redis.call('HSET', tkey(tid), 'id', tid, 'conv', conv, 'customer', A[2], 'reasons', A[3],
           'priority', prio, 'topic', topic, 'summary', A[6], 'state', 'queued',
           'created', NOW, 'ts_created', NOW, 'ts_queued', NOW, 'qseq', n,
           'sla_deadline', deadline, 'sla_breached', '0', 'assignments', 0, 'requeues', 0,
           'transfers', 0)
if prev then redis.call('HSET', tkey(tid), 'prev', prev) end
redis.call('SET', P .. 'conv:' .. conv, tid)
redis.call('ZADD', P .. 'open', n, tid)
redis.call('ZADD', P .. 'sla', deadline, tid)
redis.call('SADD', P .. 'topics', topic)
emit(tid, 'queued', {'topic', topic, 'priority', prio, 'conv', conv})
-- a returning customer goes back to its last agent, and a preferred agent is honoured, only when
-- that agent is online (unexpired lease), takes pushed work and has room
local pref, how = A[8], 'preferred'
if pref == '' and prev then
  pref = redis.call('HGET', tkey(prev), 'last_agent') or ''
  how = 'returning'
end
if pref ~= '' and redis.call('ZSCORE', P .. 'free', pref) and lease_ok(pref) then
  assign(tid, pref, how, topic)
else
  redis.call('ZADD', P .. 'q:' .. topic, qscore(prio, n, false), tid)
  dispatch_ticket(tid, nil, topic)
end
return {0, ticket_reply(tid)}
"""

_AGENT_ONLINE = r"""
-- A: agent, skills_csv, capacity, auto ('1'/'0')
local a = A[1]
local was = redis.call('ZSCORE', P .. 'presence', a)
if was and tonumber(was) < NOW then go_offline(a, 'lease_expired'); was = nil end
for _, s in ipairs(split(redis.call('HGET', akey(a), 'skills'))) do
  redis.call('SREM', P .. 'skill:' .. s, a)
end
redis.call('HSET', akey(a), 'id', a, 'skills', A[2], 'capacity', A[3], 'auto', A[4],
           'online', '1')
redis.call('HSETNX', akey(a), 'last_assign', 0)
if not was then redis.call('HSET', akey(a), 'ts_online', NOW) end
redis.call('SADD', P .. 'agents', a)
for _, s in ipairs(split(A[2])) do redis.call('SADD', P .. 'skill:' .. s, a) end
redis.call('ZADD', P .. 'presence', NOW + LEASE_MS, a)
if not was then
  emit(nil, 'agent_online', {'agent', a, 'skills', A[2], 'capacity', A[3], 'auto', A[4]})
else
  emit(nil, 'agent_updated', {'agent', a, 'skills', A[2], 'capacity', A[3], 'auto', A[4]})
end
dispatch_agent(a, nil)
return {NOW + LEASE_MS, redis.call('SMEMBERS', akey(a) .. ':tickets')}
"""

_HEARTBEAT = r"""
-- A: agent
local err = check_agent(A[1])
if err then return err end
redis.call('ZADD', P .. 'presence', NOW + LEASE_MS, A[1])
return NOW + LEASE_MS
"""

_AGENT_OFFLINE = r"""
-- A: agent, reason
if redis.call('EXISTS', akey(A[1])) == 0 then
  return fail('QNOAGENT', 'agent ' .. A[1] .. ' is not registered')
end
return go_offline(A[1], A[2])
"""

_CLAIM = r"""
-- A: agent, ticket ('' = the best fitting ticket)
local a, tid = A[1], A[2]
local h
if tid ~= '' then
  h = redis.call('HMGET', tkey(tid), 'state', 'topic', 'agent')
  if not h[1] then return fail('QNOTFOUND', 'ticket ' .. tid .. ' does not exist') end
  if h[1] ~= 'queued' then
    local who = ''
    if h[3] then who = ' (to ' .. h[3] .. ')' end
    return fail('QSTATE', 'ticket ' .. tid .. ' is ' .. h[1] .. who .. '; only a queued ticket can be claimed')
  end
end
local err = check_agent(a)
if err then return err end
if h and not has_skill(a, h[2]) then
  return fail('QSKILL', 'agent ' .. a .. ' does not take topic ' .. h[2])
end
local ah = redis.call('HMGET', akey(a), 'skills', 'capacity', 'auto')
local pull = ah[3] ~= '1'
local load = redis.call('SCARD', akey(a) .. ':tickets')
if load >= tonumber(ah[2]) then
  return fail('QCAPACITY', 'agent ' .. a .. ' is at capacity (' .. load .. ' of ' .. ah[2] .. ')')
end
if h then
  assign(tid, a, 'claim', h[2], pull)
else
  local topic
  tid, topic = best_head(ah[1], nil)
  if not tid then return false end
  assign(tid, a, 'claim_next', topic, pull)
end
return ticket_reply(tid)
"""

_CLOSE = r"""
-- A: ticket, new state, agent ('' = not checked), disposition, by, allowed states csv
local tid, newstate, agent = A[1], A[2], A[3]
local h = redis.call('HMGET', tkey(tid), 'state', 'agent', 'topic', 'conv', 'ts_assigned')
if not h[1] then return fail('QNOTFOUND', 'ticket ' .. tid .. ' does not exist') end
local allowed = false
for _, s in ipairs(split(A[6])) do if s == h[1] then allowed = true end end
if not allowed then
  return fail('QSTATE', 'ticket ' .. tid .. ' is ' .. h[1] .. '; cannot move it to ' .. newstate)
end
if agent ~= '' and h[2] ~= agent then
  return fail('QNOTASSIGNEE', 'ticket ' .. tid .. ' is assigned to ' .. tostring(h[2] or 'nobody') ..
              ', not to ' .. agent)
end
close_ticket(tid, h, newstate, A[4], A[5])
return ticket_reply(tid)
"""

_REQUEUE = r"""
-- A: ticket, reason
local tid = A[1]
local h = redis.call('HMGET', tkey(tid), 'state', 'agent')
if not h[1] then return fail('QNOTFOUND', 'ticket ' .. tid .. ' does not exist') end
if h[1] ~= 'assigned' then
  return fail('QSTATE', 'ticket ' .. tid .. ' is ' .. h[1] .. '; only an assigned ticket can be requeued')
end
local agent = h[2]
back_to_queue(tid, agent, 'requeued', A[2])
dispatch_ticket(tid, agent)
dispatch_agent(agent, tid)
return ticket_reply(tid)
"""

_TRANSFER = r"""
-- A: ticket, topic ('' = same), agent ('' = none), priority ('' = same)
local tid, newtopic, target, newprio = A[1], A[2], A[3], A[4]
local h = redis.call('HMGET', tkey(tid), 'state', 'agent', 'topic', 'priority', 'qseq')
if not h[1] then return fail('QNOTFOUND', 'ticket ' .. tid .. ' does not exist') end
if h[1] ~= 'queued' and h[1] ~= 'assigned' then
  return fail('QSTATE', 'ticket ' .. tid .. ' is ' .. h[1] .. '; only an open ticket can be transferred')
end
local old = h[2]
if h[1] ~= 'assigned' then old = nil end
if newtopic == '' then newtopic = h[3] end
if newprio == '' then newprio = h[4] end
if target ~= '' then
  local err = check_agent(target)
  if err then return err end
  if target == old then
    return fail('QSTATE', 'ticket ' .. tid .. ' is already assigned to ' .. target)
  end
  local cap = tonumber(redis.call('HGET', akey(target), 'capacity'))
  local load = redis.call('SCARD', akey(target) .. ':tickets')
  if load >= cap then
    return fail('QCAPACITY', 'agent ' .. target .. ' is at capacity (' .. load .. ' of ' .. cap .. ')')
  end
elseif newtopic == h[3] and newprio == h[4] then
  return fail('QINPUT', 'transfer of ' .. tid .. ' needs a new topic, priority or agent')
end
if old then
  redis.call('SREM', akey(old) .. ':tickets', tid)
  redis.call('HDEL', tkey(tid), 'agent')
  redis.call('HSET', tkey(tid), 'last_agent', old)
  notify(old, 'unassigned', tid, {'reason', 'transferred'})
else
  redis.call('ZREM', P .. 'q:' .. h[3], tid)
end
redis.call('HSET', tkey(tid), 'topic', newtopic, 'priority', newprio, 'ts_transferred', NOW)
redis.call('HINCRBY', tkey(tid), 'transfers', 1)
redis.call('SADD', P .. 'topics', newtopic)
emit(tid, 'transferred', {'from_topic', h[3], 'to_topic', newtopic, 'from_agent', old or '',
                          'to_agent', target, 'priority', newprio})
if target ~= '' then
  assign(tid, target, 'transfer', newtopic)
else
  redis.call('HSET', tkey(tid), 'state', 'queued', 'ts_queued', NOW)
  redis.call('ZADD', P .. 'q:' .. newtopic, qscore(newprio, h[5], true), tid)
  dispatch_ticket(tid, old)
end
if old then dispatch_agent(old, tid) end
return ticket_reply(tid)
"""

_SEND = r"""
-- A: ticket, role, sender, text, client message id
local tid, role, sender = A[1], A[2], A[3]
local h = redis.call('HMGET', tkey(tid), 'state', 'agent', 'ts_first_response')
if not h[1] then return fail('QNOTFOUND', 'ticket ' .. tid .. ' does not exist') end
local dupfield = role .. ':' .. sender .. ':' .. A[5]
local seen = redis.call('HGET', tkey(tid) .. ':cmid', dupfield)
if seen then
  local e = redis.call('XRANGE', tkey(tid) .. ':msgs', seen, seen)
  if e[1] then return {1, seen, e[1][2]} end
end
if h[1] ~= 'queued' and h[1] ~= 'assigned' then
  return fail('QSTATE', 'ticket ' .. tid .. ' is ' .. h[1] .. '; messages need an open ticket')
end
if role == 'agent' and (h[1] ~= 'assigned' or h[2] ~= sender) then
  return fail('QNOTASSIGNEE', 'ticket ' .. tid .. ' is not assigned to agent ' .. sender)
end
local fields = {'role', role, 'sender', sender, 'text', A[4], 'cmid', A[5]}
local id = redis.call('XADD', tkey(tid) .. ':msgs', '*', unpack(fields))
redis.call('HSET', tkey(tid) .. ':cmid', dupfield, id)
if role == 'agent' and not h[3] then
  redis.call('HSET', tkey(tid), 'ts_first_response', NOW)
  redis.call('ZREM', P .. 'sla', tid)
  emit(tid, 'first_response', {'agent', sender})
end
return {0, id}
"""

_POSITION = r"""
-- A: ticket
local tid = A[1]
local h = redis.call('HMGET', tkey(tid), 'state', 'topic')
if not h[1] then return fail('QNOTFOUND', 'ticket ' .. tid .. ' does not exist') end
if h[1] == 'assigned' then return {0, 0} end
if h[1] ~= 'queued' then return {-1, -1} end
local rank = redis.call('ZRANK', P .. 'q:' .. h[2], tid)
if not rank then return {-1, -1} end
local slots, handle = topic_rate(h[2])
if slots == 0 then return {rank + 1, -1} end
return {rank + 1, math.floor((rank + 1) * handle / slots)}
"""

_POSITIONS = r"""
-- A: topic ('' = every topic). Returns {ticket, position, eta_ms or -1, ...}
local topics
if A[1] ~= '' then topics = {A[1]} else topics = redis.call('SMEMBERS', P .. 'topics') end
local out = {}
for _, t in ipairs(topics) do
  local ids = redis.call('ZRANGE', P .. 'q:' .. t, 0, -1)
  if #ids > 0 then
    local slots, handle = topic_rate(t)
    for i, tid in ipairs(ids) do
      out[#out + 1] = tid
      out[#out + 1] = i
      if slots == 0 then out[#out + 1] = -1 else out[#out + 1] = math.floor(i * handle / slots) end
    end
  end
end
return out
"""

_SWEEP = r"""
-- A: limit per kind. Returns {lapsed agents, requeued tickets, sla-breached tickets}
local limit = tonumber(A[1])
local lapsed = redis.call('ZRANGEBYSCORE', P .. 'presence', '-inf', '(' .. NOW, 'LIMIT', 0, limit)
local requeued = {}
for _, a in ipairs(lapsed) do
  for _, tid in ipairs(go_offline(a, 'lease_expired')) do requeued[#requeued + 1] = tid end
end
local due = redis.call('ZRANGEBYSCORE', P .. 'sla', '-inf', NOW, 'LIMIT', 0, limit)
for _, tid in ipairs(due) do
  redis.call('ZREM', P .. 'sla', tid)
  local h = redis.call('HMGET', tkey(tid), 'state', 'agent', 'topic')
  if h[1] then
    redis.call('HSET', tkey(tid), 'sla_breached', '1', 'ts_sla_breached', NOW)
    emit(tid, 'sla_breached', {'state', h[1], 'agent', h[2] or '', 'topic', h[3]})
    if h[1] == 'assigned' and h[2] then notify(h[2], 'sla_breached', tid, {}) end
  end
end
return {lapsed, requeued, due}
"""

# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

_TOPIC_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")
_ID_RE = re.compile(r"^[^\s,\x00-\x1f\x7f]{1,200}$")
_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_STREAM_ID_RE = re.compile(r"^(\d+-\d+|\d+|\$)$")
MAX_PRIORITY = 9


RecordT = TypeVar("RecordT", Customer, Summary)


def _record(value: object, kind: type[RecordT], malformed: str) -> RecordT:
    """`value` as a `kind` record: given as one, or as the dict `kind.from_dict` reads."""
    if isinstance(value, dict):
        try:
            value = kind.from_dict(value)
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidInput(f"{malformed}: {error}") from None
    if not isinstance(value, kind):
        raise InvalidInput(
            f"{kind.__name__.lower()} must be a {kind.__name__}, not {type(value).__name__}"
        )
    return value


def _check_id(kind: str, value: object) -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise InvalidInput(
            f"{kind} must be a non-empty string of at most 200 characters without spaces or "
            f"commas, not {value!r}"
        )
    return value


def _check_topic(value: object, kind: str = "topic") -> str:
    if not isinstance(value, str) or not _TOPIC_RE.match(value):
        raise InvalidInput(
            f"{kind} must be 1-64 characters of a-z, 0-9, '_', '-', '.', starting with a letter "
            f"or digit, not {value!r}"
        )
    return value


def _check_priority(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PRIORITY:
        raise InvalidInput(f"priority must be an integer from 0 to {MAX_PRIORITY}, not {value!r}")
    return value


def _check_stream_id(value: str) -> str:
    if not isinstance(value, str) or not _STREAM_ID_RE.match(value):
        raise InvalidInput(
            f"offset must be a stream id like '0-0' or '1700000000000-3', not {value!r}"
        )
    return value


def _pairs(flat: Sequence[str]) -> dict[str, str]:
    it = iter(flat)
    return dict(zip(it, it, strict=True))


def _ticket(packed: str, duplicate: bool = False) -> Ticket:
    """A ticket from a script's reply: its hash's fields and values joined by NUL."""
    return Ticket.from_redis(_pairs(packed.split("\0")), duplicate=duplicate)


# --------------------------------------------------------------------------------------------
# The queue
# --------------------------------------------------------------------------------------------


def _with_prelude(prelude: str, body: str) -> str:
    """The script: the prelude's settings and only the helper functions the body uses (directly
    or through other helpers), since Redis builds every local function anew on each call."""
    parts = re.split(r"(?m)^(?=local function )", prelude)
    head, functions = parts[0], parts[1:]
    names = [re.match(r"local function (\w+)", f).group(1) for f in functions]  # type: ignore[union-attr]
    needed: set[str] = set()
    todo = [body]
    while todo:
        text = todo.pop()
        for name, source in zip(names, functions, strict=True):
            if name not in needed and re.search(rf"\b{name}\(", text):
                needed.add(name)
                todo.append(source)
    return head + "".join(f for n, f in zip(names, functions, strict=True) if n in needed) + body


class _Script:
    """A Lua script run by EVALSHA, loaded on first use or when Redis lost it (a restart)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self.sha_bytes = self.sha.encode()

    async def run(self, redis: Redis, args: Sequence[object]) -> Any:
        try:
            return await redis.execute_command("EVALSHA", self.sha, 0, *args)
        except NoScriptError:
            await redis.script_load(self.source)
            return await redis.execute_command("EVALSHA", self.sha, 0, *args)


class _Batcher:
    """Automatic pipelining: scripts submitted during one event-loop turn go out together.

    Every submitted call gets its own future with its own reply or error, in submission order.
    Batches run concurrently, each on a pooled connection. A connection error fails the calls
    of that batch (as it would fail single in-flight calls); NOSCRIPT loads the script and
    retries just that call.
    """

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.pending: list[tuple[_Script, Sequence[object], asyncio.Future[Any]]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def submit(self, script: _Script, args: Sequence[object]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        if loop is not self.loop:  # first use, or used from a new event loop
            self.loop, self.pending = loop, []
        future: asyncio.Future[Any] = loop.create_future()
        self.pending.append((script, args, future))
        if len(self.pending) == 1:
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        if batch:
            task = asyncio.ensure_future(self._execute(batch))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _execute(
        self, batch: list[tuple[_Script, Sequence[object], asyncio.Future[Any]]]
    ) -> None:
        # one write of every EVALSHA (packed here: redis-py's general packer is the main client
        # cost at this rate), then the replies in order, on one connection from the pool
        payload = b"".join(_pack_evalsha(script.sha_bytes, args) for script, args, _ in batch)
        pool = self.redis.connection_pool
        results: list[Any] = []
        try:
            conn = await pool.get_connection("EVALSHA")
            try:
                await conn.send_packed_command(payload, check_health=False)
                results = await _read_replies(conn, len(batch))
            except BaseException:
                await conn.disconnect()  # replies may be left unread: never reuse it
                raise
            finally:
                await pool.release(conn)
        except BaseException as error:  # handed to every caller still waiting
            failure = error if isinstance(error, Exception) else RedisConnectionError(repr(error))
            for _, _, future in batch[len(results) :]:
                if not future.done():
                    future.set_exception(failure)
            if not isinstance(error, Exception):
                raise
        for (script, args, future), result in zip(batch, results, strict=False):
            if future.done():
                continue
            if isinstance(result, NoScriptError):  # Redis restarted: load and run that call
                try:
                    future.set_result(await script.run(self.redis, args))
                except Exception as error:  # noqa: BLE001
                    if not future.done():
                        future.set_exception(error)
            elif isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)


class _Incomplete(Exception):
    """The buffer ends inside a reply: read more."""


def _parse_reply(buf: bytes, pos: int) -> tuple[Any, int]:
    """One RESP2 reply from ``buf`` at ``pos`` -> (value, next position). Bulk strings are
    decoded as UTF-8 (the queue's clients use ``decode_responses=True``); an error reply is
    returned as the exception redis-py would raise. Raises :class:`_Incomplete`."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    if kind == 36:  # $ bulk string
        size = int(buf[pos + 1 : end])
        if size < 0:
            return None, end + 2
        stop = end + 2 + size
        if len(buf) < stop + 2:
            raise _Incomplete
        return buf[end + 2 : stop].decode(), stop + 2
    if kind == 58:  # : integer
        return int(buf[pos + 1 : end]), end + 2
    if kind == 42:  # * array
        count = int(buf[pos + 1 : end])
        if count < 0:
            return None, end + 2
        items = []
        pos = end + 2
        for _ in range(count):
            item, pos = _parse_reply(buf, pos)
            items.append(item)
        return items, pos
    if kind == 43:  # + simple string
        return buf[pos + 1 : end].decode(), end + 2
    if kind == 45:  # - error
        return BaseParser.parse_error(buf[pos + 1 : end].decode()), end + 2
    raise RedisConnectionError(f"unexpected reply from Redis: {buf[pos : pos + 40]!r}")


async def _read_replies(conn: Any, count: int) -> list[Any]:
    """``count`` replies straight from the connection's stream (one pass over big reads instead
    of redis-py's line-by-line parser); falls back to redis-py where its internals differ."""
    reader = getattr(conn, "_reader", None)
    if not isinstance(reader, asyncio.StreamReader):
        out = []
        for _ in range(count):
            try:
                out.append(await conn.read_response())
            except ResponseError as error:
                out.append(error)
        return out
    replies: list[Any] = []
    buf = b""
    pos = 0
    while len(replies) < count:
        try:
            value, pos = _parse_reply(buf, pos)
        except _Incomplete:
            chunk = await reader.read(262144)
            if not chunk:
                raise RedisConnectionError("Redis closed the connection") from None
            buf = buf[pos:] + chunk
            pos = 0
            continue
        replies.append(value)
    return replies


def _pack_evalsha(sha: bytes, args: Sequence[object]) -> bytes:
    """RESP for ``EVALSHA sha 0 *args`` (args are str or int)."""
    parts = [b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n$1\r\n0\r\n" % (len(args) + 3, sha)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class HandoffQueue:
    """Tickets, agents, routing and message logs under ``<namespace>:q:`` in one Redis.

    ``lease_seconds``: how long an agent stays online without a heartbeat. ``sweep_interval``:
    default period of :meth:`run_sweeper` (a lapsed agent's tickets are back in the queue within
    lease + interval). ``sla_first_response_seconds``: a ticket with no agent message by then is
    flagged. ``default_handle_seconds``: handling time assumed for ETAs before any ticket of a
    topic was handled. ``closed_ttl_seconds``: if set, a closed ticket's keys expire after that.
    ``autobatch``: send the scripts that concurrent callers start in the same event-loop turn as
    one pipeline (one write, one connection, replies in order); each call is still its own atomic
    script and its own result or error. It is what lets one process drive thousands of
    lifecycles a second; turn it off to send every call on its own.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        namespace: str = "support",
        lease_seconds: float = 15.0,
        sla_first_response_seconds: float = 120.0,
        max_message_bytes: int = 4096,
        default_handle_seconds: float = 240.0,
        closed_ttl_seconds: float | None = None,
        events_maxlen: int = 100_000,
        sweep_interval: float | None = None,
        autobatch: bool = True,
    ) -> None:
        kwargs = getattr(getattr(redis, "connection_pool", None), "connection_kwargs", {})
        if not kwargs.get("decode_responses", False):
            raise ValueError("HandoffQueue needs a redis client created with decode_responses=True")
        if lease_seconds <= 0 or sla_first_response_seconds <= 0:
            raise ValueError("lease_seconds and sla_first_response_seconds must be positive")
        self.redis = redis
        if not isinstance(namespace, str) or not _NAMESPACE_RE.match(namespace):
            raise ValueError(f"namespace must be 1-64 of A-Z a-z 0-9 _ . -, not {namespace!r}")
        self.namespace = namespace
        self.prefix = f"{namespace}:q:"
        self.lease_seconds = float(lease_seconds)
        self.sla_first_response_seconds = float(sla_first_response_seconds)
        self.max_message_bytes = int(max_message_bytes)
        self.default_handle_seconds = float(default_handle_seconds)
        self.closed_ttl_seconds = closed_ttl_seconds
        self.sweep_interval = (
            sweep_interval if sweep_interval is not None else min(0.5, self.lease_seconds / 4)
        )
        prelude = (
            _PRELUDE.replace("__PREFIX__", self.prefix)
            .replace("__EVENTS_MAXLEN__", str(int(events_maxlen)))
            .replace("__CLOSED_TTL_MS__", str(int((closed_ttl_seconds or 0) * 1000)))
            .replace("__LEASE_MS__", str(int(self.lease_seconds * 1000)))
            .replace("__DEFAULT_HANDLE_MS__", str(int(self.default_handle_seconds * 1000)))
        )
        self._scripts = {
            name: _Script(_with_prelude(prelude, body))
            for name, body in {
                "enqueue": _ENQUEUE,
                "agent_online": _AGENT_ONLINE,
                "heartbeat": _HEARTBEAT,
                "agent_offline": _AGENT_OFFLINE,
                "claim": _CLAIM,
                "close": _CLOSE,
                "requeue": _REQUEUE,
                "transfer": _TRANSFER,
                "send": _SEND,
                "position": _POSITION,
                "positions": _POSITIONS,
                "sweep": _SWEEP,
            }.items()
        }
        self._batcher = _Batcher(redis) if autobatch else None

    @classmethod
    def from_url(cls, url: str, *, max_connections: int = 256, **kwargs: Any) -> HandoffQueue:
        """A queue on a new client for ``url``: decoded responses, and a pool of up to
        ``max_connections`` in which extra callers wait for a free connection (blocking readers
        each hold one while they wait)."""
        pool = BlockingConnectionPool.from_url(
            url, decode_responses=True, max_connections=max_connections, timeout=30
        )
        return cls(Redis(connection_pool=pool), **kwargs)

    async def aclose(self) -> None:
        """Close the underlying client (only if you created the queue with :meth:`from_url`)."""
        await self.redis.close()
        await self.redis.connection_pool.disconnect()

    # -- keys -------------------------------------------------------------------------------

    def key(self, *parts: str) -> str:
        """A key of this queue, e.g. ``key("t", "T1", "msgs")`` -> ``support:q:t:T1:msgs``."""
        return self.prefix + ":".join(parts)

    # -- plumbing ---------------------------------------------------------------------------

    async def _run(self, name: str, *args: object) -> Any:
        script = self._scripts[name]
        try:
            if self._batcher is not None:
                return await self._batcher.submit(script, args)
            return await script.run(self.redis, args)
        except ResponseError as error:
            raise self._translate(error) from None

    @staticmethod
    def _translate(error: ResponseError) -> Exception:
        text = str(error)
        code, _, message = text.partition(" ")
        cls = _ERROR_CODES.get(code)
        if cls is None:
            return error
        return cls(message.split(" script:", 1)[0].strip())

    # -- tickets ----------------------------------------------------------------------------

    async def enqueue(
        self,
        conversation_id: str,
        customer: Customer | dict[str, Any],
        reasons: Iterable[str],
        priority: int,
        topic: str,
        summary: Summary | dict[str, Any] | None = None,
        *,
        prefer_agent: str | None = None,
    ) -> Ticket:
        """Open a ticket for a conversation, or return its open one (``ticket.duplicate``).

        The ticket is queued and, if a fitting auto-assign agent is free, assigned in the same
        step. A conversation whose last ticket is closed gets a new ticket; it goes to the last
        agent (or ``prefer_agent``) only if that agent is online with room.
        """
        _check_id("conversation_id", conversation_id)
        customer = _record(customer, Customer, "customer must have an id")
        _check_id("customer id", customer.id)
        if isinstance(reasons, str):
            raise InvalidInput("reasons must be a list of reason codes, not a single string")
        reasons = list(reasons)
        if not all(isinstance(r, str) and r for r in reasons):
            raise InvalidInput(f"reasons must be non-empty strings, not {reasons!r}")
        _check_priority(priority)
        _check_topic(topic)
        summary = (
            Summary() if summary is None else _record(summary, Summary, "summary is malformed")
        )
        if prefer_agent is not None:
            _check_id("prefer_agent", prefer_agent)
        dup, flat = await self._run(
            "enqueue",
            conversation_id,
            json.dumps(customer.to_dict(), separators=(",", ":")),
            json.dumps(reasons, separators=(",", ":")),
            priority,
            topic,
            json.dumps(summary.to_dict(), separators=(",", ":")),
            int(self.sla_first_response_seconds * 1000),
            prefer_agent or "",
        )
        return _ticket(flat, duplicate=bool(dup))

    async def get(self, ticket_id: str) -> Ticket:
        """The ticket, or :class:`TicketNotFound`."""
        data = await self.redis.hgetall(self.key("t", _check_id("ticket_id", ticket_id)))
        if not data:
            raise TicketNotFound(f"ticket {ticket_id} does not exist")
        return Ticket.from_redis(data)

    async def get_many(self, ticket_ids: Iterable[str]) -> list[Ticket]:
        """The tickets that exist among ``ticket_ids``, in that order (one round trip)."""
        ids = list(ticket_ids)
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for tid in ids:
                pipe.hgetall(self.key("t", tid))
            rows = await pipe.execute()
        return [Ticket.from_redis(row) for row in rows if row]

    async def open_ticket_for(self, conversation_id: str) -> Ticket | None:
        """The conversation's open (queued or assigned) ticket, if any."""
        tid = await self.redis.get(self.key("conv", _check_id("conversation_id", conversation_id)))
        if tid is None:
            return None
        try:
            return await self.get(tid)
        except TicketNotFound:
            return None

    async def last_ticket_for(self, conversation_id: str) -> Ticket | None:
        """The conversation's most recent closed ticket, if any."""
        tid = await self.redis.get(
            self.key("conv_last", _check_id("conversation_id", conversation_id))
        )
        if tid is None:
            return None
        try:
            return await self.get(tid)
        except TicketNotFound:
            return None

    async def list_tickets(
        self, state: TicketState | str | None = None, *, limit: int = 1000
    ) -> list[Ticket]:
        """Tickets, newest first for closed ones, oldest first for open ones.

        ``state=None`` lists open tickets (queued and assigned); a closed state lists the
        ``limit`` most recently closed tickets in it.
        """
        wanted = TicketState(state) if state is not None else None
        if wanted is None or wanted.is_open:
            ids = await self.redis.zrange(self.key("open"), 0, -1)
        else:
            ids = await self.redis.zrevrange(self.key("closed"), 0, max(limit * 4, limit) - 1)
        tickets = await self.get_many(ids)
        if wanted is not None:
            tickets = [t for t in tickets if t.state == wanted]
        if wanted is None or wanted.is_open:  # queued first, in routing order; then assigned
            tickets.sort(
                key=lambda t: (
                    (t.state != TicketState.QUEUED, -t.priority, t.created_at)
                    if t.state == TicketState.QUEUED
                    else (True, 0, t.created_at)
                )
            )
        return tickets[:limit]

    async def queued(self, topic: str | None = None) -> list[str]:
        """Ids of waiting tickets in routing order (per topic; topics in name order)."""
        topics = [_check_topic(topic)] if topic else sorted(await self.topics())
        out: list[str] = []
        for t in topics:
            out += await self.redis.zrange(self.key("q", t), 0, -1)
        return out

    async def topics(self) -> set[str]:
        """Every topic a ticket has been queued under."""
        return set(await self.redis.smembers(self.key("topics")))

    async def audit(self, ticket_id: str) -> list[AuditEvent]:
        """The ticket's history: every state change, oldest first."""
        _check_id("ticket_id", ticket_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(self.key("t", ticket_id))
            pipe.xrange(self.key("t", ticket_id, "audit"), "-", "+")
            exists, entries = await pipe.execute()
        if not exists:
            raise TicketNotFound(f"ticket {ticket_id} does not exist")
        return [AuditEvent.from_stream(eid, fields) for eid, fields in entries]

    # -- agents -----------------------------------------------------------------------------

    async def agent_online(
        self,
        agent_id: str,
        skills: Iterable[str],
        capacity: int,
        *,
        auto_assign: bool = True,
    ) -> AgentInfo:
        """Register (or update) an agent as online, with a fresh lease.

        Skills are topics; ``"*"`` takes every topic. An auto-assign agent immediately gets the
        best waiting tickets it can take, up to its capacity (see its inbox). Calling it again
        updates skills/capacity and keeps the agent's tickets.
        """
        _check_id("agent_id", agent_id)
        if isinstance(skills, str):
            raise InvalidInput("skills must be a list of topics, not a single string")
        skill_list = sorted({s if s == "*" else _check_topic(s, "skill") for s in skills})
        if not skill_list:
            raise InvalidInput("an agent needs at least one skill (a topic, or '*' for all)")
        if isinstance(capacity, bool) or not isinstance(capacity, int) or not 1 <= capacity <= 1000:
            raise InvalidInput(f"capacity must be an integer from 1 to 1000, not {capacity!r}")
        _, tickets = await self._run(
            "agent_online", agent_id, ",".join(skill_list), capacity, "1" if auto_assign else "0"
        )
        return await self.agent(agent_id)

    async def heartbeat(self, agent_id: str) -> float:
        """Renew the agent's lease; returns when it expires (epoch seconds).

        Raises :class:`AgentOffline` if the agent is offline or its lease already lapsed (then
        it has just been taken offline and its tickets requeued): call :meth:`agent_online`.
        """
        expires = await self._run("heartbeat", _check_id("agent_id", agent_id))
        return int(expires) / 1000.0

    async def agent_offline(self, agent_id: str, reason: str = "signed_out") -> list[str]:
        """Take an agent offline; its open tickets go back to the front of their queues (and on
        to other free agents). Returns the requeued ticket ids. Idempotent."""
        return list(await self._run("agent_offline", _check_id("agent_id", agent_id), reason))

    async def agent(self, agent_id: str) -> AgentInfo:
        """One agent, or :class:`AgentNotFound`."""
        infos = await self._agents([_check_id("agent_id", agent_id)])
        if not infos:
            raise AgentNotFound(f"agent {agent_id} is not registered")
        return infos[0]

    async def agents(self, *, online_only: bool = False) -> list[AgentInfo]:
        """Every registered agent (sorted by id)."""
        ids = sorted(await self.redis.smembers(self.key("agents")))
        infos = await self._agents(ids)
        return [a for a in infos if a.online] if online_only else infos

    async def _agents(self, ids: list[str]) -> list[AgentInfo]:
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.time()
            for a in ids:
                pipe.hgetall(self.key("a", a))
                pipe.smembers(self.key("a", a, "tickets"))
                pipe.zscore(self.key("presence"), a)
            rows = await pipe.execute()
        now_s, now_us = rows[0]
        now = now_s + now_us / 1e6
        out = []
        for i, a in enumerate(ids):
            data, tickets, lease = rows[1 + 3 * i : 4 + 3 * i]
            if not data:
                continue
            lease_at = lease / 1000.0 if lease is not None else None
            last = int(data.get("last_assign") or 0)
            out.append(
                AgentInfo(
                    id=a,
                    skills=tuple(s for s in (data.get("skills") or "").split(",") if s),
                    capacity=int(data.get("capacity") or 0),
                    auto_assign=data.get("auto") == "1",
                    online=data.get("online") == "1" and lease_at is not None and lease_at >= now,
                    load=len(tickets),
                    tickets=tuple(sorted(tickets, key=_ticket_order)),
                    lease_expires_at=lease_at,
                    last_assigned_at=last / 1000.0 if last else None,
                )
            )
        return out

    # -- routing ----------------------------------------------------------------------------

    async def claim_next(self, agent_id: str) -> Ticket | None:
        """Assign the best waiting ticket the agent can take (highest priority, front of queue,
        oldest) to it; None when nothing fits. For pull agents, but any online agent may call it.
        """
        flat = await self._run("claim", _check_id("agent_id", agent_id), "")
        return _ticket(flat) if flat else None

    async def claim(self, agent_id: str, ticket_id: str) -> Ticket:
        """Assign a given queued ticket to the agent (needs the skill and room)."""
        flat = await self._run(
            "claim", _check_id("agent_id", agent_id), _check_id("ticket_id", ticket_id)
        )
        return _ticket(flat)

    async def requeue(self, ticket_id: str, reason: str = "requeued") -> Ticket:
        """Take an assigned ticket from its agent and put it at the front of its queue; it goes to
        another free agent if there is one (not straight back to the same agent)."""
        flat = await self._run("requeue", _check_id("ticket_id", ticket_id), _check_reason(reason))
        return _ticket(flat)

    async def transfer(
        self,
        ticket_id: str,
        topic: str | None = None,
        agent_id: str | None = None,
        *,
        priority: int | None = None,
    ) -> Ticket:
        """Move an open ticket to another topic (front of that queue) and/or straight to an online
        agent with room, and/or change its priority."""
        _check_id("ticket_id", ticket_id)
        if topic is None and agent_id is None and priority is None:
            raise InvalidInput("transfer needs a topic, an agent_id or a priority")
        flat = await self._run(
            "transfer",
            ticket_id,
            _check_topic(topic) if topic is not None else "",
            _check_id("agent_id", agent_id) if agent_id is not None else "",
            str(_check_priority(priority)) if priority is not None else "",
        )
        return _ticket(flat)

    # -- closing ----------------------------------------------------------------------------

    async def _close(
        self,
        ticket_id: str,
        state: TicketState,
        agent_id: str,
        disposition: str,
        by: str,
        allowed: str,
    ) -> Ticket:
        flat = await self._run(
            "close", _check_id("ticket_id", ticket_id), state.value, agent_id,
            _check_reason(disposition, "disposition"), by, allowed,
        )  # fmt: skip
        return _ticket(flat)

    async def resolve(self, ticket_id: str, agent_id: str, disposition: str = "resolved") -> Ticket:
        """The assigned agent closes the ticket as resolved; the agent pulls its next ticket."""
        _check_id("agent_id", agent_id)
        return await self._close(
            ticket_id, TicketState.RESOLVED, agent_id, disposition, agent_id, "assigned"
        )

    async def return_to_bot(
        self, ticket_id: str, agent_id: str, disposition: str = "returned to bot"
    ) -> Ticket:
        """The assigned agent hands the conversation back to the bot (closes the ticket)."""
        _check_id("agent_id", agent_id)
        return await self._close(
            ticket_id, TicketState.RETURNED_TO_BOT, agent_id, disposition, agent_id, "assigned"
        )

    async def abandon(self, ticket_id: str, reason: str = "customer left") -> Ticket:
        """The customer left or cancelled: close a queued or assigned ticket as abandoned."""
        return await self._close(
            ticket_id, TicketState.ABANDONED, "", reason, "customer", "queued,assigned"
        )

    async def close(self, ticket_id: str, disposition: str = "closed by operator") -> Ticket:
        """An operator closes an open ticket as resolved, whoever holds it."""
        return await self._close(
            ticket_id, TicketState.RESOLVED, "", disposition, "operator", "queued,assigned"
        )

    # -- messages ---------------------------------------------------------------------------

    async def send_message(
        self,
        ticket_id: str,
        sender_role: str,
        sender_id: str,
        text: str,
        client_message_id: str,
    ) -> Message:
        """Append a message to the ticket's log. A retry with the same client message id (same
        role and sender) returns the first message with ``duplicate=True``. Agents must hold the
        ticket; customers may write while it is queued or assigned."""
        _check_id("ticket_id", ticket_id)
        if sender_role not in SENDER_ROLES:
            raise InvalidInput(
                f"sender_role must be one of {', '.join(SENDER_ROLES)}, not {sender_role!r}"
            )
        _check_id("sender_id", sender_id)
        _check_id("client_message_id", client_message_id)
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput("message text must be a non-empty string")
        size = len(text.encode("utf-8"))
        if size > self.max_message_bytes:
            raise MessageTooLarge(
                f"message is {size} bytes; the limit is {self.max_message_bytes} bytes"
            )
        dup, entry_id, *rest = await self._run(
            "send", ticket_id, sender_role, sender_id, text, client_message_id
        )
        if dup:
            return Message.from_stream(ticket_id, entry_id, _pairs(rest[0]), duplicate=True)
        return Message(
            id=entry_id,
            ticket_id=ticket_id,
            role=sender_role,
            sender_id=sender_id,
            text=text,
            client_message_id=client_message_id,
            timestamp=int(entry_id.split("-", 1)[0]) / 1000.0,
        )

    async def read_messages(
        self,
        ticket_id: str,
        after: str = "0-0",
        block_ms: int | None = None,
        count: int | None = None,
    ) -> list[Message]:
        """Messages after the stream id ``after`` (exclusive), oldest first. With ``block_ms``,
        waits up to that long for the first new one when there is none yet (0 = forever).
        Resume after a reconnect by passing the id of the last message seen."""
        _check_id("ticket_id", ticket_id)
        _check_stream_id(after)
        key = self.key("t", ticket_id, "msgs")
        start = "-" if after in ("0", "0-0") else f"({after}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(self.key("t", ticket_id))
            if after != "$":  # "$": only messages that arrive from now on
                pipe.xrange(key, start, "+", count=count)
            exists, *found = await pipe.execute()
        entries = found[0] if found else []
        if not exists:
            raise TicketNotFound(f"ticket {ticket_id} does not exist")
        if not entries and block_ms is not None:
            got = await self.redis.xread({key: after}, count=count, block=block_ms)
            entries = got[0][1] if got else []
        return [Message.from_stream(ticket_id, eid, fields) for eid, fields in entries]

    async def read_many(
        self, offsets: dict[str, str], block_ms: int | None = None, count: int | None = None
    ) -> dict[str, list[Message]]:
        """Messages of several tickets at once: ``{ticket_id: after}`` -> ``{ticket_id: [...]}``
        (one XREAD; only tickets with new messages appear)."""
        if not offsets:
            return {}
        streams = {
            self.key("t", _check_id("ticket_id", tid), "msgs"): _check_stream_id(after)
            for tid, after in offsets.items()
        }
        got = await self.redis.xread(streams, count=count, block=block_ms)
        out: dict[str, list[Message]] = {}
        for key, entries in got or []:
            tid = key[len(self.prefix) + 2 : -len(":msgs")]
            out[tid] = [Message.from_stream(tid, eid, fields) for eid, fields in entries]
        return out

    # -- notifications ----------------------------------------------------------------------

    async def read_agent_events(
        self, agent_id: str, after: str = "$", block_ms: int | None = None, count: int | None = None
    ) -> list[AgentEvent]:
        """Entries of the agent's inbox after ``after`` (``"$"``: only new ones; pass the last id
        seen to resume). Blocks up to ``block_ms`` when given."""
        _check_id("agent_id", agent_id)
        _check_stream_id(after)
        got = await self.redis.xread(
            {self.key("a", agent_id, "inbox"): after}, count=count, block=block_ms
        )
        out = []
        for _, entries in got or []:
            for eid, fields in entries:
                fields = dict(fields)
                kind = fields.pop("type", "")
                tid = fields.pop("ticket", "") or None
                out.append(AgentEvent(eid, kind, tid, fields))
        return out

    async def read_ticket_events(
        self, ticket_id: str, after: str = "0-0", block_ms: int | None = None
    ) -> list[AuditEvent]:
        """State changes of one ticket after ``after`` (e.g. for the customer's page: ``assigned``,
        ``resolved``, ``returned_to_bot`` ...), optionally blocking."""
        _check_id("ticket_id", ticket_id)
        _check_stream_id(after)
        got = await self.redis.xread({self.key("t", ticket_id, "audit"): after}, block=block_ms)
        return [AuditEvent.from_stream(eid, f) for _, entries in got or [] for eid, f in entries]

    async def read_events(
        self, after: str = "$", block_ms: int | None = None, count: int | None = None
    ) -> list[AuditEvent]:
        """The queue-wide event stream (every ticket and agent change) after ``after``."""
        _check_stream_id(after)
        got = await self.redis.xread({self.key("events"): after}, count=count, block=block_ms)
        return [AuditEvent.from_stream(eid, f) for _, entries in got or [] for eid, f in entries]

    # -- waiting customers ------------------------------------------------------------------

    async def position(self, ticket_id: str) -> QueuePosition:
        """Place in the topic's queue (1 = next) and ETA in seconds; ``(0, 0.0)`` once assigned,
        ``(None, None)`` when closed; ETA None when no agent for the topic is online."""
        pos, eta = await self._run("position", _check_id("ticket_id", ticket_id))
        return _position(int(pos), int(eta))

    async def positions(self, topic: str | None = None) -> dict[str, QueuePosition]:
        """Position and ETA of every waiting ticket (of one topic, or all), in one round trip."""
        flat = await self._run("positions", _check_topic(topic) if topic else "")
        return {
            flat[i]: _position(int(flat[i + 1]), int(flat[i + 2])) for i in range(0, len(flat), 3)
        }

    async def watch_positions(
        self, *, block_ms: int = 5000, after: str = "$"
    ) -> AsyncIterator[dict[str, QueuePosition]]:
        """Push updates for waiting customers: yields ``{ticket_id: QueuePosition}`` for every
        ticket whose position or ETA changed (including tickets that left the queue:
        ``(0, 0.0)`` assigned, ``(None, None)`` closed). The first yield is the full snapshot.
        Follows the event stream; bursts of events cost one :meth:`positions` call."""
        _check_stream_id(after)
        cursor = after
        if cursor == "$":  # pin the cursor before the snapshot so no change slips between
            latest = await self.redis.xrevrange(self.key("events"), "+", "-", count=1)
            cursor = latest[0][0] if latest else "0-0"
        last: dict[str, QueuePosition] = await self.positions()
        yield dict(last)
        while True:
            got = await self.redis.xread({self.key("events"): cursor}, count=1000, block=block_ms)
            if not got:
                continue
            cursor = got[0][1][-1][0]
            current = await self.positions()
            changes = {tid: pos for tid, pos in current.items() if last.get(tid) != pos}
            gone = [tid for tid in last if tid not in current]
            if gone:
                for ticket in await self.get_many(gone):
                    changes[ticket.id] = (
                        QueuePosition(0, 0.0)
                        if ticket.state == TicketState.ASSIGNED
                        else QueuePosition(None, None)
                    )
            last = current
            if changes:
                yield changes

    # -- sweeper ----------------------------------------------------------------------------

    async def reap_expired(self, limit: int = 1000) -> SweepResult:
        """One sweep: take agents whose lease lapsed offline (their tickets to the front of their
        queues and on to free agents) and flag tickets past their first-response SLA."""
        lapsed, requeued, breached = await self._run("sweep", int(limit))
        return SweepResult(tuple(lapsed), tuple(requeued), tuple(breached))

    async def run_sweeper(
        self, interval: float | None = None, stop: asyncio.Event | None = None
    ) -> None:
        """Sweep every ``interval`` seconds until ``stop`` is set or the task is cancelled. Errors
        (e.g. Redis restarting) are logged and retried. The gateway runs this as a background
        task; running it in several processes at once is safe."""
        period = interval if interval is not None else self.sweep_interval
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                result = await self.reap_expired()
                if result.lapsed_agents or result.sla_breached:
                    log.info(
                        "queue sweep: offline %s, requeued %s, SLA breached %s",
                        result.lapsed_agents, result.requeued, result.sla_breached,
                    )  # fmt: skip
            except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                log.warning("queue sweep failed (will retry): %s", error)
            try:
                await asyncio.wait_for(stop.wait(), timeout=period)
            except asyncio.TimeoutError:
                pass

    # -- stats ------------------------------------------------------------------------------

    async def stats(self) -> dict[str, Any]:
        """Counts for dashboards and the CLI: waiting per topic, open, agents online."""
        topics = sorted(await self.topics())
        async with self.redis.pipeline(transaction=False) as pipe:
            for t in topics:
                pipe.zcard(self.key("q", t))
            pipe.zcard(self.key("open"))
            pipe.zcard(self.key("closed"))
            pipe.zcount(self.key("presence"), "-inf", "+inf")
            rows = await pipe.execute()
        waiting = dict(zip(topics, rows[: len(topics)], strict=True))
        return {
            "waiting": {t: n for t, n in waiting.items() if n},
            "waiting_total": sum(waiting.values()),
            "open": rows[len(topics)],
            "closed": rows[len(topics) + 1],
            "agents_online": rows[len(topics) + 2],
        }


def _check_reason(value: object, kind: str = "reason") -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 500 or "\x00" in value:
        raise InvalidInput(f"{kind} must be a non-empty string of at most 500 characters")
    return value


def _position(pos: int, eta_ms: int) -> QueuePosition:
    if pos < 0:
        return QueuePosition(None, None)
    if pos == 0:
        return QueuePosition(0, 0.0)
    return QueuePosition(pos, None if eta_ms < 0 else eta_ms / 1000.0)


def _ticket_order(tid: str) -> tuple[int, int, str]:
    digits = tid[1:]
    return (0, int(digits), tid) if digits.isdigit() else (1, 0, tid)
