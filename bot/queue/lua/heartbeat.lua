-- A: agent
local err = check_agent(A[1])
if err then return err end
redis.call('ZADD', k_presence(), NOW + LEASE_MS, A[1])
return NOW + LEASE_MS
