-- Record that a worker is alive, and forget workers whose heartbeat ran out.
-- ARGV: worker, ttl_ms, info (an opaque record). A ttl_ms of 0 removes the worker.
-- Returns Redis's time in ms.
local worker = ARGV[1]
local ttl_ms = tonumber(ARGV[2])
local now = now_ms()
local key = prefix .. 'worker:' .. worker
redis.call('ZREMRANGEBYSCORE', K_WORKERS, '-inf', now)
if ttl_ms == 0 then
    redis.call('ZREM', K_WORKERS, worker)
    redis.call('DEL', key)
else
    redis.call('ZADD', K_WORKERS, now + ttl_ms, worker)
    redis.call('SET', key, ARGV[3], 'PX', ttl_ms)
end
return now
