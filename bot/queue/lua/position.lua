-- A: ticket
local tid = A[1]
local h = redis.call('HMGET', k_ticket(tid), 'state', 'topic')
if not h[1] then return fail('QNOTFOUND', 'ticket ' .. tid .. ' does not exist') end
if h[1] == 'assigned' then return {0, 0} end
if h[1] ~= 'queued' then return {-1, -1} end
local rank = redis.call('ZRANK', k_topic_queue(h[2]), tid)
if not rank then return {-1, -1} end
local slots, handle = topic_rate(h[2])
if slots == 0 then return {rank + 1, -1} end
return {rank + 1, math.floor((rank + 1) * handle / slots)}
