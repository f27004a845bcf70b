-- Shared by every hasten script; prepended when the scripts are loaded.
-- KEYS[1] is the queue's key prefix, "hasten:{name}:". Every key a script touches
-- starts with it, so the whole queue lives in one Redis Cluster slot.
--
-- A job body is "<priority>,<lease_ms>,<enqueued_ms>|<payload>"; the header is the
-- only part of a job the scripts read. A running job's entry in `running` is
-- "<token>|<worker>|<attempt>|<started_ms>".
--
-- Scripts carry no shebang flags and always delete or pop before their first
-- write that allocates, so they keep running when Redis is at maxmemory.
local prefix = KEYS[1]
local K_JOBS = prefix .. 'jobs'
local K_PRIOS = prefix .. 'prios'
local K_DELAYED = prefix .. 'delayed'
local K_RUNNING = prefix .. 'running'
local K_LEASES = prefix .. 'leases'
local K_ATTEMPTS = prefix .. 'attempts'
local K_STALLS = prefix .. 'stalls'
local K_ABORTING = prefix .. 'aborting'
local K_TOKEN = prefix .. 'token'
local K_WAKE = prefix .. 'wake'
local K_WORKERS = prefix .. 'workers'
local K_DLQ = prefix .. 'dlq'
local K_DLQ_RECORDS = prefix .. 'dlq:records'
local K_DLQ_BODIES = prefix .. 'dlq:bodies'

local function now_ms()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function ready_key(priority)
    return prefix .. 'ready:' .. priority
end

local function parse_header(body)
    local p, lease, enqueued = string.match(body, '^(-?%d+),(%d+),(%d+)|')
    return p, tonumber(lease), tonumber(enqueued)
end

local function parse_running(run)
    local token, worker, attempt, started = string.match(run, '^(%d+)|([^|]*)|(%d+)|(%d+)$')
    return token, worker, tonumber(attempt), tonumber(started)
end

-- Wake one blocked worker; the list never holds more than one marker.
local function wake()
    if redis.call('LLEN', K_WAKE) == 0 then
        redis.call('RPUSH', K_WAKE, '1')
    end
end

local function push_ready(id, priority, front)
    if front then
        redis.call('LPUSH', ready_key(priority), id)
    else
        redis.call('RPUSH', ready_key(priority), id)
    end
    redis.call('ZADD', K_PRIOS, -tonumber(priority), priority)
end

-- Remove every trace of a job but its result, then store and announce the result.
local function finalize(id, record, ttl_ms)
    redis.call('HDEL', K_JOBS, id)
    redis.call('HDEL', K_ATTEMPTS, id)
    redis.call('HDEL', K_STALLS, id)
    redis.call('SREM', K_ABORTING, id)
    redis.call('SET', prefix .. 'result:' .. id, record, 'PX', ttl_ms)
    redis.call('PUBLISH', prefix .. 'done:' .. id, record)
end

local function script_record(status, reason, message, body, attempt, now)
    local p, _, enqueued = parse_header(body)
    return cmsgpack.pack({
        s = status, r = reason, em = message, p = tonumber(p), eq = enqueued, a = attempt, ft = now,
    })
end

local function set_attempts(id, attempts)
    if attempts > 0 then
        redis.call('HSET', K_ATTEMPTS, id, attempts)
    else
        redis.call('HDEL', K_ATTEMPTS, id)
    end
end

-- "max_stalls,result_ttl_ms,dlq_max,dlq_age_ms", as workers send it.
local function read_policy(text)
    local stalls, ttl, dlq_max, dlq_age = string.match(text, '^(%d+),(%d+),(%d+),(%d+)$')
    return {
        max_stalls = tonumber(stalls), ttl_ms = tonumber(ttl),
        dlq_max = tonumber(dlq_max), dlq_age_ms = tonumber(dlq_age),
    }
end

-- Keep a failed job's body and failure record in the bounded dead-letter queue.
-- Scores are failure times, made strictly increasing (a thousandth of a millisecond past
-- the newest when several fail within one millisecond) so "newest first" and the trimming
-- of the oldest follow the order jobs failed in, not their ids.
local function dead_letter(id, body, record, now, policy)
    local score = now
    local newest = redis.call('ZRANGE', K_DLQ, -1, -1, 'WITHSCORES')
    if newest[2] and tonumber(newest[2]) >= score then
        score = tonumber(newest[2]) + 0.001
    end
    redis.call('ZADD', K_DLQ, score, id)
    redis.call('HSET', K_DLQ_RECORDS, id, record)
    redis.call('HSET', K_DLQ_BODIES, id, body)
    local old = redis.call('ZRANGE', K_DLQ, '-inf', now - policy.dlq_age_ms, 'BYSCORE', 'LIMIT', 0, 100)
    local excess = redis.call('ZCARD', K_DLQ) - #old - policy.dlq_max
    if excess > 0 then
        local oldest = redis.call('ZRANGE', K_DLQ, #old, #old + math.min(excess, 100) - 1)
        for i = 1, #oldest do
            old[#old + 1] = oldest[i]
        end
    end
    if #old > 0 then
        redis.call('ZREM', K_DLQ, unpack(old))
        redis.call('HDEL', K_DLQ_RECORDS, unpack(old))
        redis.call('HDEL', K_DLQ_BODIES, unpack(old))
    end
end

-- End a job as failed: store its result, and keep it in the dead-letter queue.
local function fail(id, body, record, now, policy)
    finalize(id, record, policy.ttl_ms)
    dead_letter(id, body, record, now, policy)
end

-- A lease ran out: its worker died or lost Redis. Put the job back at the head of its
-- priority (a stall does not use up an attempt), or end it when it stalled too often or
-- was being aborted.
local function reclaim(id, now, policy)
    local run = redis.call('HGET', K_RUNNING, id)
    redis.call('HDEL', K_RUNNING, id)
    redis.call('ZREM', K_LEASES, id)
    if not run then
        return
    end
    local _, _, attempt = parse_running(run)
    local body = redis.call('HGET', K_JOBS, id)
    if not body then
        return
    end
    if redis.call('SISMEMBER', K_ABORTING, id) == 1 then
        finalize(id, script_record('aborted', 'aborted', 'aborted while its worker was lost',
            body, attempt, now), policy.ttl_ms)
        return
    end
    local stalls = redis.call('HINCRBY', K_STALLS, id, 1)
    if stalls > policy.max_stalls then
        fail(id, body, script_record('failed', 'stalled',
            'the job stalled ' .. stalls .. ' times (its worker died or lost Redis)',
            body, attempt, now), now, policy)
        return
    end
    set_attempts(id, attempt - 1)
    local priority = parse_header(body)
    push_ready(id, priority, true)
    wake()
end

local function reclaim_expired(now, policy)
    local expired = redis.call('ZRANGE', K_LEASES, '-inf', now, 'BYSCORE', 'LIMIT', 0, 100)
    for i = 1, #expired do
        reclaim(expired[i], now, policy)
    end
    return expired
end
