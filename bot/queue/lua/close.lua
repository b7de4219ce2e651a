-- A: ticket, new state, agent ('' = not checked), disposition, by, allowed states csv
local tid, newstate, agent = A[1], A[2], A[3]
local h = redis.call('HMGET', k_ticket(tid), 'state', 'agent', 'topic', 'conv', 'ts_assigned')
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
