-- The prelude of every queue script. scripts.py fills in the __PLACEHOLDERS__ with the queue's
-- settings and inserts the key functions generated from bot/keys.py (k_ticket(id): the key of
-- the ticket's hash, ...), then keeps only the local functions a script uses (directly or
-- through other functions), since Redis builds every local function anew on each call.
--
-- A script validates everything before its first write, so a refused call changes nothing.
-- Times come from the server's clock (TIME), so clients' clocks do not matter.
local EVMAX = '__EVENTS_MAXLEN__'
local TTL_MS = __CLOSED_TTL_MS__
local LEASE_MS = __LEASE_MS__
local DEFAULT_HANDLE_MS = __DEFAULT_HANDLE_MS__
local A = ARGV
local T = redis.call('TIME')
local NOW = tonumber(T[1]) * 1000 + math.floor(tonumber(T[2]) / 1000)
local BASE = 1099511627776        -- 2^40: queue scores are (9-prio)*2^41 + (front?0:2^40) + seq
local LOADW = 8796093022208       -- 2^43: free-agent scores are load%*2^43 + last assignment ms

-- __KEY_FUNCTIONS__
local function fail(code, msg) return redis.error_reply(code .. ' ' .. msg) end
-- a ticket hash as one string, fields and values joined by NUL (no stored value contains NUL):
-- one bulk reply instead of ~50 is much cheaper for the client to parse
local function ticket_reply(tid) return table.concat(redis.call('HGETALL', k_ticket(tid)), '\0') end

-- write a new ticket hash in one HSET: the fields of v in the order of TICKET_FIELDS (records.py,
-- filled in by scripts.py), then ts_<event> = NOW for each of the given events
local function new_ticket(tid, v, events)
  local args = {}
  for _, f in ipairs({__TICKET_FIELDS__}) do
    if v[f] ~= nil then args[#args + 1] = f; args[#args + 1] = v[f] end
  end
  for _, e in ipairs(events) do args[#args + 1] = 'ts_' .. e; args[#args + 1] = NOW end
  redis.call('HSET', k_ticket(tid), unpack(args))
end

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
  if tid then redis.call('XADD', k_ticket_audit(tid), '*', unpack(args)) end
  redis.call('XADD', k_events(), 'MAXLEN', '~', EVMAX, '*', unpack(args))
end

local function notify(agent, kind, tid, extra)
  local args = {'type', kind, 'ticket', tid or ''}
  if extra then for i = 1, #extra do args[#args + 1] = extra[i] end end
  redis.call('XADD', k_agent_inbox(agent), 'MAXLEN', '~', 1000, '*', unpack(args))
end

local function lease_ok(a)
  local exp = redis.call('ZSCORE', k_presence(), a)
  return exp and tonumber(exp) >= NOW
end

-- keep k_free() (online auto-assign agents with room, least loaded / idle longest first) true
local function refresh_free(a)
  local h = redis.call('HMGET', k_agent(a), 'capacity', 'auto', 'online', 'last_assign')
  local cap = tonumber(h[1] or 0)
  local load = redis.call('SCARD', k_agent_tickets(a))
  if h[2] == '1' and h[3] == '1' and load < cap then
    local pct = math.floor(load * 100 / cap)
    redis.call('ZADD', k_free(), string.format('%.0f', pct * LOADW + tonumber(h[4] or 0)), a)
  else
    redis.call('ZREM', k_free(), a)
  end
end

local function has_skill(a, topic)
  return redis.call('SISMEMBER', k_skill(topic), a) == 1
      or redis.call('SISMEMBER', k_skill('*'), a) == 1
end

-- the free auto-assign agent that should get a ticket of this topic (nil: none)
local function best_agent(topic, exclude)
  local start = 0
  while true do
    local chunk = redis.call('ZRANGE', k_free(), start, start + 31)
    if #chunk == 0 then return nil end
    for _, a in ipairs(chunk) do
      if a ~= exclude and has_skill(a, topic) and lease_ok(a) then return a end
    end
    start = start + 32
  end
end

local function assign(tid, agent, how, topic, pull)
  redis.call('ZREM', k_topic_queue(topic), tid)
  redis.call('HSET', k_ticket(tid), 'state', 'assigned', 'agent', agent, 'ts_assigned', NOW)
  redis.call('HINCRBY', k_ticket(tid), 'assignments', 1)
  redis.call('SADD', k_agent_tickets(agent), tid)
  redis.call('HSET', k_agent(agent), 'last_assign', NOW)
  emit(tid, 'assigned', {'agent', agent, 'how', how, 'topic', topic})
  notify(agent, 'assigned', tid, {'how', how, 'topic', topic})
  if not pull then refresh_free(agent) end  -- a pull agent is never in k_free()
end

-- give a queued ticket to the best free fitting agent, if any
local function dispatch_ticket(tid, exclude, topic)
  topic = topic or redis.call('HGET', k_ticket(tid), 'topic')
  local a = best_agent(topic, exclude)
  if a then assign(tid, a, 'auto', topic) end
  return a
end

-- the best queued ticket for an agent with these skills (nil: none)
local function best_head(skills, exclude)
  local topics = split(skills)
  for _, s in ipairs(topics) do
    if s == '*' then topics = redis.call('SMEMBERS', k_topics()); break end
  end
  local best, bestscore, besttopic = nil, nil, nil
  for _, t in ipairs(topics) do
    local r = redis.call('ZRANGE', k_topic_queue(t), 0, 1, 'WITHSCORES')
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
  local h = redis.call('HMGET', k_agent(a), 'skills', 'capacity', 'auto', 'online')
  if h[3] ~= '1' or h[4] ~= '1' or not lease_ok(a) then redis.call('ZREM', k_free(), a); return end
  local cap = tonumber(h[2])
  local load = redis.call('SCARD', k_agent_tickets(a))
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
  local h = redis.call('HMGET', k_ticket(tid), 'priority', 'id', 'topic', 'qseq')
  redis.call('SREM', k_agent_tickets(from), tid)
  redis.call('HDEL', k_ticket(tid), 'agent')
  redis.call('HSET', k_ticket(tid), 'state', 'queued', 'last_agent', from, 'ts_queued', NOW,
             'ts_' .. event, NOW)
  redis.call('HINCRBY', k_ticket(tid), 'requeues', 1)
  redis.call('ZADD', k_topic_queue(h[3]), qscore(h[1], h[4], true), tid)
  emit(tid, event, {'agent', from, 'reason', reason, 'topic', h[3]})
  notify(from, 'unassigned', tid, {'reason', reason})
  return qscore(h[1], h[4], true)
end

-- take an agent offline: out of presence and routing, its tickets to the front of their queues,
-- then to other free agents (highest priority / oldest first)
local function go_offline(a, reason)
  redis.call('ZREM', k_presence(), a)
  redis.call('ZREM', k_free(), a)
  for _, s in ipairs(split(redis.call('HGET', k_agent(a), 'skills'))) do
    redis.call('SREM', k_skill(s), a)
  end
  redis.call('HSET', k_agent(a), 'online', '0', 'ts_offline', NOW)
  local tickets = redis.call('SMEMBERS', k_agent_tickets(a))
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
  local exp = redis.call('ZSCORE', k_presence(), a)
  if not exp then
    if redis.call('EXISTS', k_agent(a)) == 0 then
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
    for _, k in ipairs({k_ticket(tid), k_ticket_messages(tid), k_ticket_cmids(tid),
                        k_ticket_audit(tid)}) do
      redis.call('PEXPIRE', k, TTL_MS)
    end
  end
end

-- close an open ticket (h = HMGET state, agent, topic, conv, ts_assigned)
local function close_ticket(tid, h, newstate, disposition, by)
  local state, agent, topic, conv = h[1], h[2], h[3], h[4]
  if state == 'queued' then redis.call('ZREM', k_topic_queue(topic), tid) end
  local fields = {'state', newstate, 'ts_' .. newstate, NOW, 'disposition', disposition,
                  'closed_by', by}
  if state == 'assigned' and agent then
    fields[#fields + 1] = 'last_agent'; fields[#fields + 1] = agent
  end
  redis.call('HSET', k_ticket(tid), unpack(fields))
  redis.call('ZREM', k_open(), tid)
  redis.call('ZADD', k_closed(), NOW, tid)
  if TTL_MS > 0 then redis.call('ZREMRANGEBYSCORE', k_closed(), '-inf', '(' .. (NOW - TTL_MS)) end
  redis.call('ZREM', k_sla(), tid)
  if redis.call('GET', k_conversation_open(conv)) == tid then redis.call('DEL', k_conversation_open(conv)) end
  if TTL_MS > 0 then
    redis.call('SET', k_conversation_last(conv), tid, 'PX', TTL_MS)
  else
    redis.call('SET', k_conversation_last(conv), tid)
  end
  emit(tid, newstate, {'agent', agent or '', 'disposition', disposition, 'by', by, 'topic', topic})
  if state == 'assigned' and agent then
    redis.call('SREM', k_agent_tickets(agent), tid)
    local hk = k_handle_times(topic)
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
  for _, a in ipairs(redis.call('SUNION', k_skill(topic), k_skill('*'))) do
    if lease_ok(a) then slots = slots + tonumber(redis.call('HGET', k_agent(a), 'capacity') or 0) end
  end
  local times = redis.call('LRANGE', k_handle_times(topic), 0, -1)
  local handle = DEFAULT_HANDLE_MS
  if #times > 0 then
    local sum = 0
    for _, v in ipairs(times) do sum = sum + tonumber(v) end
    handle = sum / #times
  end
  return slots, handle
end
