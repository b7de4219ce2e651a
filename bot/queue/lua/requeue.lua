-- A: ticket, reason
local tid = A[1]
local h = redis.call('HMGET', k_ticket(tid), 'state', 'agent')
if not h[1] then return fail('QNOTFOUND', 'ticket ' .. tid .. ' does not exist') end
if h[1] ~= 'assigned' then
  return fail('QSTATE', 'ticket ' .. tid .. ' is ' .. h[1] .. '; only an assigned ticket can be requeued')
end
local agent = h[2]
back_to_queue(tid, agent, 'requeued', A[2])
dispatch_ticket(tid, agent)
dispatch_agent(agent, tid)
return ticket_reply(tid)
