-- A: conv, customer_json, reasons_json, priority, topic, summary_json, sla_ms, prefer_agent
local conv, topic, prio = A[1], A[5], A[4]
local existing = redis.call('GET', k_conversation_open(conv))
if existing then return {1, ticket_reply(existing)} end
local n = redis.call('INCR', k_seq())
local tid = 'T' .. n
local deadline = NOW + tonumber(A[7])
local prev = redis.call('GET', k_conversation_last(conv))
new_ticket(tid, {id = tid, conv = conv, customer = A[2], reasons = A[3], priority = prio,
                 topic = topic, summary = A[6], state = 'queued', created = NOW, qseq = n,
                 sla_deadline = deadline, sla_breached = '0', assignments = 0, requeues = 0,
                 transfers = 0, prev = prev or nil}, {'created', 'queued'})
redis.call('SET', k_conversation_open(conv), tid)
redis.call('ZADD', k_open(), n, tid)
redis.call('ZADD', k_sla(), deadline, tid)
redis.call('SADD', k_topics(), topic)
emit(tid, 'queued', {'topic', topic, 'priority', prio, 'conv', conv})
-- a returning customer goes back to its last agent, and a preferred agent is honoured, only when
-- that agent is online (unexpired lease), takes pushed work and has room
local pref, how = A[8], 'preferred'
if pref == '' and prev then
  pref = redis.call('HGET', k_ticket(prev), 'last_agent') or ''
  how = 'returning'
end
if pref ~= '' and redis.call('ZSCORE', k_free(), pref) and lease_ok(pref) then
  assign(tid, pref, how, topic)
else
  redis.call('ZADD', k_topic_queue(topic), qscore(prio, n, false), tid)
  dispatch_ticket(tid, nil, topic)
end
return {0, ticket_reply(tid)}
