-- Sliding log: exact count of the units admitted in the last `size` microseconds.
--
-- KEYS[1]  sorted set, one member per admitted unit, scored by its admission
--          time in microseconds; expires `size` after the newest unit.
-- ARGV     cost, limit, size (microseconds)
-- Returns  {allowed 0|1, remaining, reset_after us, retry_after us}
local cost = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local size = tonumber(ARGV[3])

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

-- A unit stops counting exactly `size` after it was admitted.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - size)
local used = redis.call('ZCARD', KEYS[1])

if used + cost > limit then
  -- Room for `cost` opens when the oldest `excess` units have expired.
  local excess = used + cost - limit
  local oldest = redis.call('ZRANGE', KEYS[1], excess - 1, excess - 1, 'WITHSCORES')
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  return {0, limit - used, tonumber(newest[2]) + size - now, tonumber(oldest[2]) + size - now}
end

-- Members must be unique: the exact time as text (Lua would print the number
-- in 14 significant digits) plus the unit's position in the log.
local stamp = time[1] .. string.format('%06d', tonumber(time[2])) .. ':'
local batch = {}
for i = 1, cost do
  batch[#batch + 1] = now
  batch[#batch + 1] = stamp .. (used + i)
  -- unpack() is bounded by the Lua stack; add large costs in slices.
  if #batch >= 1000 then
    redis.call('ZADD', KEYS[1], unpack(batch))
    batch = {}
  end
end
if #batch > 0 then
  redis.call('ZADD', KEYS[1], unpack(batch))
end
redis.call('PEXPIRE', KEYS[1], math.ceil(size / 1000))
return {1, limit - used - cost, size, 0}
