-- A: topic ('' = every topic). Returns {ticket, position, eta_ms or -1, ...}
local topics
if A[1] ~= '' then topics = {A[1]} else topics = redis.call('SMEMBERS', k_topics()) end
local out = {}
for _, t in ipairs(topics) do
  local ids = redis.call('ZRANGE', k_topic_queue(t), 0, -1)
  if #ids > 0 then
    local slots, handle = topic_rate(t)
    for i, tid in ipairs(ids) do
      out[#out + 1] = tid
      out[#out + 1] = i
      if slots == 0 then out[#out + 1] = -1 else out[#out + 1] = math.floor(i * handle / slots) end
    end
  end
end
return out
