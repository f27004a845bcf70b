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

-- A lease ran out: its worker died or lost Redis. Put the job back at the head of its
-- priority (a stall does not use up an attempt), or end it when it stalled too often or
-- was being aborted.
local function reclaim(id, now, max_stalls, ttl_ms)
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
            body, attempt, now), ttl_ms)
        return
    end
    local stalls = redis.call('HINCRBY', K_STALLS, id, 1)
    if stalls > max_stalls then
        finalize(id, script_record('failed', 'stalled',
            'the job stalled ' .. stalls .. ' times (its worker died or lost Redis)',
            body, attempt, now), ttl_ms)
        return
    end
    set_attempts(id, attempt - 1)
    local priority = parse_header(body)
    push_ready(id, priority, true)
    wake()
end

local function reclaim_expired(now, max_stalls, ttl_ms)
    local expired = redis.call('ZRANGE', K_LEASES, '-inf', now, 'BYSCORE', 'LIMIT', 0, 100)
    for i = 1, #expired do
        reclaim(expired[i], now, max_stalls, ttl_ms)
    end
    return expired
end
