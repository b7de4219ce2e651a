-- A: ticket, topic ('' = same), agent ('' = none), priority ('' = same),
--    holder ('' = anyone may transfer; else only while that agent holds the ticket)
local tid, newtopic, target, newprio, holder = A[1], A[2], A[3], A[4], A[5]
local h = redis.call('HMGET', k_ticket(tid), 'state', 'agent', 'topic', 'priority', 'qseq')
if not h[1] then return fail('QNOTFOUND', 'ticket ' .. tid .. ' does not exist') end
if h[1] ~= 'queued' and h[1] ~= 'assigned' then
  return fail('QSTATE', 'ticket ' .. tid .. ' is ' .. h[1] .. '; only an open ticket can be transferred')
end
-- checked here, in the same atomic step as the move: a resolve, transfer or lapsed lease that
-- ran first leaves the former holder nothing to transfer
if holder and holder ~= '' and (h[1] ~= 'assigned' or h[2] ~= holder) then
  return fail('QNOTASSIGNEE', 'ticket ' .. tid .. ' is not assigned to agent ' .. holder)
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
  local cap = tonumber(redis.call('HGET', k_agent(target), 'capacity'))
  local load = redis.call('SCARD', k_agent_tickets(target))
  if load >= cap then
    return fail('QCAPACITY', 'agent ' .. target .. ' is at capacity (' .. load .. ' of ' .. cap .. ')')
  end
elseif newtopic == h[3] and newprio == h[4] then
  return fail('QINPUT', 'transfer of ' .. tid .. ' needs a new topic, priority or agent')
end
if old then
  redis.call('SREM', k_agent_tickets(old), tid)
  redis.call('HDEL', k_ticket(tid), 'agent')
  redis.call('HSET', k_ticket(tid), 'last_agent', old)
  notify(old, 'unassigned', tid, {'reason', 'transferred'})
else
  redis.call('ZREM', k_topic_queue(h[3]), tid)
end
redis.call('HSET', k_ticket(tid), 'topic', newtopic, 'priority', newprio, 'ts_transferred', NOW)
redis.call('HINCRBY', k_ticket(tid), 'transfers', 1)
redis.call('SADD', k_topics(), newtopic)
emit(tid, 'transferred', {'from_topic', h[3], 'to_topic', newtopic, 'from_agent', old or '',
                          'to_agent', target, 'priority', newprio})
if target ~= '' then
  assign(tid, target, 'transfer', newtopic)
else
  redis.call('HSET', k_ticket(tid), 'state', 'queued', 'ts_queued', NOW)
  redis.call('ZADD', k_topic_queue(newtopic), qscore(newprio, h[5], true), tid)
  dispatch_ticket(tid, old)
end
if old then dispatch_agent(old, tid) end
return ticket_reply(tid)
