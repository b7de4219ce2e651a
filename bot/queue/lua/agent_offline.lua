-- A: agent, reason
if redis.call('EXISTS', k_agent(A[1])) == 0 then
  return fail('QNOAGENT', 'agent ' .. A[1] .. ' is not registered')
end
return go_offline(A[1], A[2])
