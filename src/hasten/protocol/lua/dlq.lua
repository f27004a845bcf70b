-- Act on the dead-letter queue. ARGV: action, id ("" for every job).
--   "requeue": put the job back in its queue as new (attempts and stalls reset, same id,
--              so a signed payload still verifies); a job whose id is in use is left.
--   "purge":   forget it.
-- Returns how many jobs were acted on.
local action = ARGV[1]
local ids
if ARGV[2] == '' then
    ids = redis.call('ZRANGE', K_DLQ, 0, -1)
else
    ids = {ARGV[2]}
end
local now = now_ms()
local done = 0
for i = 1, #ids do
    local id = ids[i]
    local body = redis.call('HGET', K_DLQ_BODIES, id)
    if body and (action == 'purge' or redis.call('HEXISTS', K_JOBS, id) == 0) then
        redis.call('ZREM', K_DLQ, id)
        redis.call('HDEL', K_DLQ_RECORDS, id)
        redis.call('HDEL', K_DLQ_BODIES, id)
        if action == 'requeue' then
            local priority, lease = parse_header(body)
            local payload = string.sub(body, string.find(body, '|', 1, true) + 1)
            redis.call('DEL', prefix .. 'result:' .. id)
            redis.call('HSET', K_JOBS, id, priority .. ',' .. lease .. ',' .. now .. '|' .. payload)
            push_ready(id, priority, false)
            wake()
        end
        done = done + 1
    end
end
return done
