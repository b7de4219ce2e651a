-- A: ticket, role, sender, text, client message id
local tid, role, sender = A[1], A[2], A[3]
local h = redis.call('HMGET', k_ticket(tid), 'state', 'agent', 'ts_first_response')
if not h[1] then return fail('QNOTFOUND', 'ticket ' .. tid .. ' does not exist') end
local dupfield = role .. ':' .. sender .. ':' .. A[5]
local seen = redis.call('HGET', k_ticket_cmids(tid), dupfield)
if seen then
  local e = redis.call('XRANGE', k_ticket_messages(tid), seen, seen)
  if e[1] then return {1, seen, e[1][2]} end
end
if h[1] ~= 'queued' and h[1] ~= 'assigned' then
  return fail('QSTATE', 'ticket ' .. tid .. ' is ' .. h[1] .. '; messages need an open ticket')
end
if role == 'agent' and (h[1] ~= 'assigned' or h[2] ~= sender) then
  return fail('QNOTASSIGNEE', 'ticket ' .. tid .. ' is not assigned to agent ' .. sender)
end
local fields = {'role', role, 'sender', sender, 'text', A[4], 'cmid', A[5]}
local id = redis.call('XADD', k_ticket_messages(tid), '*', unpack(fields))
redis.call('HSET', k_ticket_cmids(tid), dupfield, id)
if role == 'agent' and not h[3] then
  redis.call('HSET', k_ticket(tid), 'ts_first_response', NOW)
  redis.call('ZREM', k_sla(), tid)
  emit(tid, 'first_response', {'agent', sender})
end
return {0, id}
