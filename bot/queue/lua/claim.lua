-- A: agent, ticket ('' = the best fitting ticket)
local a, tid = A[1], A[2]
local h
if tid ~= '' then
  h = redis.call('HMGET', k_ticket(tid), 'state', 'topic', 'agent')
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
local ah = redis.call('HMGET', k_agent(a), 'skills', 'capacity', 'auto')
local pull = ah[3] ~= '1'
local load = redis.call('SCARD', k_agent_tickets(a))
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
