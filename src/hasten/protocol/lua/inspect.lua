-- Read one job's state in one atomic step. ARGV: id.
-- Returns {state, data, extra}:
--   {"running", body, running entry}       {"queued", body, attempts}
--   {"scheduled", body, attempts, due_ms}  {"result", record}       {"none"}
local id = ARGV[1]
local body = redis.call('HGET', K_JOBS, id)
if not body then
    local record = redis.call('GET', prefix .. 'result:' .. id)
    if record then
        return {'result', record}
    end
    return {'none'}
end
local run = redis.call('HGET', K_RUNNING, id)
if run then
    return {'running', body, run}
end
local attempts = redis.call('HGET', K_ATTEMPTS, id) or '0'
local due = redis.call('ZSCORE', K_DELAYED, id)
if due then
    return {'scheduled', body, attempts, due}
end
return {'queued', body, attempts}
