-- Extend the leases a worker holds, and reclaim other workers' expired ones.
-- ARGV: max_stalls, result_ttl_ms, n, then n groups of (id, token, lease_ms).
-- Returns {lost ids, ids being aborted}: a lost lease means another worker owns
-- the job now, so this worker must drop it.
local max_stalls = tonumber(ARGV[1])
local ttl_ms = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local now = now_ms()
local lost = {}
local aborting = {}
for i = 0, n - 1 do
    local base = 4 + i * 3
    local id = ARGV[base]
    local run = redis.call('HGET', K_RUNNING, id)
    if run and parse_running(run) == ARGV[base + 1] then
        redis.call('ZADD', K_LEASES, 'XX', now + tonumber(ARGV[base + 2]), id)
        if redis.call('SISMEMBER', K_ABORTING, id) == 1 then
            aborting[#aborting + 1] = id
        end
    else
        lost[#lost + 1] = id
    end
end
reclaim_expired(now, max_stalls, ttl_ms)
return {lost, aborting}
