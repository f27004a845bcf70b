-- One round trip of a worker: report finished jobs, reclaim expired leases, promote due
-- delayed jobs, and claim up to `want` jobs in priority order.
-- ARGV: worker, want, policy (see read_policy), outcomes: a msgpack list of
-- [id, token, kind, a, b] (or empty):
--   kind "f": finished; a = result record, b = ttl ms
--   kind "d": failed for good; as "f", and the job is kept in the dead-letter queue
--   kind "r": retry; a = delay ms, b = "1" to count the attempt, "0" not to
--   kind "l": released on shutdown; goes back to the head, attempt not counted
-- Returns {now, wait_ms, fenced ids, reclaimed ids, claimed, due_ms}, claimed being flat
-- (id, token, attempt, body) groups; when nothing was claimed, wait_ms is how long to
-- sleep (-1: until woken) and due_ms how long until the next delayed job (-1: none).
local worker = ARGV[1]
local want = tonumber(ARGV[2])
local policy = read_policy(ARGV[3])
local outcomes = {}
if ARGV[4] ~= '' then
    outcomes = cmsgpack.unpack(ARGV[4])
end
local now = now_ms()

local fenced = {}
for i = 1, #outcomes do
    local outcome = outcomes[i]
    local id = outcome[1]
    local run = redis.call('HGET', K_RUNNING, id)
    local token, _, attempt = nil, nil, 0
    if run then
        token, _, attempt = parse_running(run)
    end
    if token ~= outcome[2] then
        fenced[#fenced + 1] = id
    else
        redis.call('HDEL', K_RUNNING, id)
        redis.call('ZREM', K_LEASES, id)
        local kind = outcome[3]
        if kind == 'f' then
            finalize(id, outcome[4], outcome[5])
        elseif kind == 'd' then
            local body = redis.call('HGET', K_JOBS, id)
            finalize(id, outcome[4], outcome[5])
            dead_letter(id, body, outcome[4], now, policy)
        else
            local body = redis.call('HGET', K_JOBS, id)
            local priority = parse_header(body)
            if kind == 'r' then
                if outcome[5] == '0' then
                    attempt = attempt - 1
                end
                set_attempts(id, attempt)
                local delay = tonumber(outcome[4])
                if delay > 0 then
                    redis.call('ZADD', K_DELAYED, now + delay, id)
                    wake()
                else
                    push_ready(id, priority, false)
                end
            else
                set_attempts(id, attempt - 1)
                push_ready(id, priority, true)
                wake()
            end
        end
    end
end

local reclaimed = reclaim_expired(now, policy)

local claimed = {}
local wait = -1
local due_in = -1
if want > 0 then
    local due = redis.call('ZRANGE', K_DELAYED, '-inf', now, 'BYSCORE', 'LIMIT', 0, 1000)
    if #due > 0 then
        redis.call('ZREM', K_DELAYED, unpack(due))
        local bodies = redis.call('HMGET', K_JOBS, unpack(due))
        for i = 1, #due do
            if bodies[i] then
                push_ready(due[i], parse_header(bodies[i]), false)
            end
        end
    end

    local ids = {}
    local count = 0
    while count < want do
        local top = redis.call('ZRANGE', K_PRIOS, 0, 0)
        if #top == 0 then
            break
        end
        local asked = want - count
        local got = redis.call('LPOP', ready_key(top[1]), asked)
        if not got then
            redis.call('ZREM', K_PRIOS, top[1])
        else
            for i = 1, #got do
                ids[count + i] = got[i]
            end
            count = count + #got
            if #got < asked or redis.call('LLEN', ready_key(top[1])) == 0 then
                redis.call('ZREM', K_PRIOS, top[1])
            end
        end
    end

    if count > 0 then
        local bodies = redis.call('HMGET', K_JOBS, unpack(ids))
        local tries = redis.call('HMGET', K_ATTEMPTS, unpack(ids))
        local token = redis.call('INCRBY', K_TOKEN, count) - count
        local running = {}
        local leases = {}
        for i = 1, count do
            local body = bodies[i]
            if body then
                local id = ids[i]
                local _, lease = parse_header(body)
                local attempt = (tonumber(tries[i]) or 0) + 1
                token = token + 1
                running[#running + 1] = id
                running[#running + 1] = token .. '|' .. worker .. '|' .. attempt .. '|' .. now
                leases[#leases + 1] = now + lease
                leases[#leases + 1] = id
                claimed[#claimed + 1] = id
                claimed[#claimed + 1] = token
                claimed[#claimed + 1] = attempt
                claimed[#claimed + 1] = body
            end
        end
        if #running > 0 then
            redis.call('HSET', K_RUNNING, unpack(running))
            redis.call('ZADD', K_LEASES, unpack(leases))
        end
        if count == want and redis.call('ZCARD', K_PRIOS) > 0 then
            wake()
        end
    else
        local next_due = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
        if #next_due > 0 then
            due_in = math.max(tonumber(next_due[2]) - now, 0)
            wait = due_in
        end
        local next_lease = redis.call('ZRANGE', K_LEASES, 0, 0, 'WITHSCORES')
        if #next_lease > 0 then
            local until_lease = math.max(tonumber(next_lease[2]) - now, 0)
            if wait < 0 or until_lease < wait then
                wait = until_lease
            end
        end
    end
end
return {now, wait, fenced, reclaimed, claimed, due_in}
