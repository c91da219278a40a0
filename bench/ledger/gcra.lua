-- GCRA rate limiter for Redis (the usual redis-cell / redis-gcra shape), called via EVALSHA.
-- KEYS[1] = bucket key; ARGV = limit, period (seconds), burst, cost.
-- Same semantics as ama_pg's ledger: capacity = limit + burst, emission interval = period / limit.
-- Returns {allowed, limit, remaining, reset_seconds, retry_after_seconds}.
local limit  = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local burst  = tonumber(ARGV[3])
local cost   = tonumber(ARGV[4])
local interval  = period / limit
local tolerance = interval * (limit + burst)
local t = redis.call('TIME')
-- seconds since 2023-11-14, so a double keeps microsecond precision when stored as a string
local now = (tonumber(t[1]) - 1700000000) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat  = tat + interval * cost
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, limit, 0, math.ceil(tat - now), math.ceil(allow_at - now)}
end
local remaining = math.floor((now - allow_at) / interval)
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX', math.max(1, math.ceil((new_tat - now) * 1000)))
return {1, limit, remaining, math.ceil(new_tat - now), 0}
