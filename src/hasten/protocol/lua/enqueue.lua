-- Enqueue jobs; an id that exists (queued, running, or with a kept result) is left alone.
-- ARGV[1]: a msgpack list of [id, payload, priority, due, lease_ms], where due is ""
-- (now), "+<ms>" (after a delay, on Redis's clock) or "<ms>" (at an epoch time).
-- Returns one 1 (created) or 0 (existed) per job.
local jobs = cmsgpack.unpack(ARGV[1])
local now = now_ms()
local created = {}
local bodies = {}
local ready = {}
local priorities = {}
local delayed = {}
for i = 1, #jobs do
    local job = jobs[i]
    local id = job[1]
    if redis.call('HEXISTS', K_JOBS, id) == 1
        or redis.call('EXISTS', prefix .. 'result:' .. id) == 1 then
        created[i] = 0
    else
        local priority = tostring(job[3])
        local due = job[4]
        local at = now
        if due ~= '' then
            if string.sub(due, 1, 1) == '+' then
                at = now + tonumber(string.sub(due, 2))
            else
                at = tonumber(due)
            end
        end
        bodies[#bodies + 1] = id
        bodies[#bodies + 1] = priority .. ',' .. job[5] .. ',' .. now .. '|' .. job[2]
        if at > now then
            delayed[#delayed + 1] = at
            delayed[#delayed + 1] = id
        else
            local list = ready[priority]
            if not list then
                list = {}
                ready[priority] = list
                priorities[#priorities + 1] = priority
            end
            list[#list + 1] = id
        end
        created[i] = 1
    end
end
if #bodies > 0 then
    redis.call('HSET', K_JOBS, unpack(bodies))
    for _, priority in ipairs(priorities) do
        redis.call('RPUSH', ready_key(priority), unpack(ready[priority]))
        redis.call('ZADD', K_PRIOS, -tonumber(priority), priority)
    end
    if #delayed > 0 then
        redis.call('ZADD', K_DELAYED, unpack(delayed))
    end
    wake()
end
return created
