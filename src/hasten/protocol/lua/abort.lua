-- Abort a job. ARGV: id, result_ttl_ms.
-- Returns "aborted" (it was waiting and is now ended), "running" (its worker is told
-- to cancel it), or "" (no such job, or already ended: nothing changes).
local id = ARGV[1]
local ttl_ms = tonumber(ARGV[2])
if redis.call('HEXISTS', K_RUNNING, id) == 1 then
    redis.call('SADD', K_ABORTING, id)
    redis.call('PUBLISH', prefix .. 'control', 'abort:' .. id)
    return 'running'
end
local body = redis.call('HGET', K_JOBS, id)
if not body then
    return ''
end
local priority = parse_header(body)
if redis.call('ZREM', K_DELAYED, id) == 0 then
    redis.call('LREM', ready_key(priority), 1, id)
end
local attempts = tonumber(redis.call('HGET', K_ATTEMPTS, id)) or 0
finalize(id, script_record('aborted', 'aborted', 'aborted before it started', body, attempts,
    now_ms()), ttl_ms)
return 'aborted'
