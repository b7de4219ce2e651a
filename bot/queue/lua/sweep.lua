-- A: limit per kind. Returns {lapsed agents, requeued tickets, sla-breached tickets}
local limit = tonumber(A[1])
local lapsed = redis.call('ZRANGEBYSCORE', k_presence(), '-inf', '(' .. NOW, 'LIMIT', 0, limit)
local requeued = {}
for _, a in ipairs(lapsed) do
  for _, tid in ipairs(go_offline(a, 'lease_expired')) do requeued[#requeued + 1] = tid end
end
local due = redis.call('ZRANGEBYSCORE', k_sla(), '-inf', NOW, 'LIMIT', 0, limit)
for _, tid in ipairs(due) do
  redis.call('ZREM', k_sla(), tid)
  local h = redis.call('HMGET', k_ticket(tid), 'state', 'agent', 'topic')
  if h[1] then
    redis.call('HSET', k_ticket(tid), 'sla_breached', '1', 'ts_sla_breached', NOW)
    emit(tid, 'sla_breached', {'state', h[1], 'agent', h[2] or '', 'topic', h[3]})
    if h[1] == 'assigned' and h[2] then notify(h[2], 'sla_breached', tid, {}) end
  end
end
return {lapsed, requeued, due}
