-- Extend the leases a worker holds, and reclaim other workers' expired ones.
-- ARGV: policy (see read_policy), leases: a msgpack list of [id, token, lease_ms].
-- Returns {lost ids, ids being aborted}: a lost lease means another worker owns
-- the job now, so this worker must drop it.
local policy = read_policy(ARGV[1])
local leases = cmsgpack.unpack(ARGV[2])
local now = now_ms()
local lost = {}
local aborting = {}
for i = 1, #leases do
    local id, token, lease = leases[i][1], leases[i][2], leases[i][3]
    local run = redis.call('HGET', K_RUNNING, id)
    if run and parse_running(run) == token then
        redis.call('ZADD', K_LEASES, 'XX', now + lease, id)
        if redis.call('SISMEMBER', K_ABORTING, id) == 1 then
            aborting[#aborting + 1] = id
        end
    else
        lost[#lost + 1] = id
    end
end
reclaim_expired(now, policy)
return {lost, aborting}
