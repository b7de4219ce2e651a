-- A: agent, skills_csv, capacity, auto ('1'/'0')
local a = A[1]
local was = redis.call('ZSCORE', k_presence(), a)
if was and tonumber(was) < NOW then go_offline(a, 'lease_expired'); was = nil end
for _, s in ipairs(split(redis.call('HGET', k_agent(a), 'skills'))) do
  redis.call('SREM', k_skill(s), a)
end
redis.call('HSET', k_agent(a), 'id', a, 'skills', A[2], 'capacity', A[3], 'auto', A[4],
           'online', '1')
redis.call('HSETNX', k_agent(a), 'last_assign', 0)
if not was then redis.call('HSET', k_agent(a), 'ts_online', NOW) end
redis.call('SADD', k_agents(), a)
for _, s in ipairs(split(A[2])) do redis.call('SADD', k_skill(s), a) end
redis.call('ZADD', k_presence(), NOW + LEASE_MS, a)
if not was then
  emit(nil, 'agent_online', {'agent', a, 'skills', A[2], 'capacity', A[3], 'auto', A[4]})
else
  emit(nil, 'agent_updated', {'agent', a, 'skills', A[2], 'capacity', A[3], 'auto', A[4]})
end
dispatch_agent(a, nil)
return {NOW + LEASE_MS, redis.call('SMEMBERS', k_agent_tickets(a))}
