-- GCRA: one theoretical arrival time (TAT) per key. Each unit moves it one
-- emission interval forward; a request passes while the new TAT is at most
-- `burst` intervals ahead of now.
--
-- KEYS[1]  string: the TAT in microseconds; expires when the TAT is reached,
--          since a TAT in the past means the same as no key.
-- ARGV     cost, burst, interval (microseconds per unit, may be fractional)
-- Returns  {allowed 0|1, remaining, reset_after us, retry_after us}
local cost = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local interval = tonumber(ARGV[3])
local epsilon = 1e-9

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
  tat = now
end
local tolerance = burst * interval
local new_tat = tat + cost * interval
local allow_at = new_tat - tolerance

-- One microsecond of slack: at epoch magnitudes a double holds the TAT only
-- to a quarter of a microsecond, and rounding must not refuse a due request.
if allow_at - now > 1 then
  return {
    0,
    math.max(0, math.floor((now - tat + tolerance) / interval + epsilon)),
    math.ceil(tat - now),
    math.ceil(allow_at - now),
  }
end

redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.max(0, math.floor((now - allow_at) / interval + epsilon)), math.ceil(new_tat - now), 0}
