-- Sliding window counter: the previous window's count, weighted by how much of
-- it still overlaps the sliding window, plus the current window's count.
--
-- KEYS[1]  hash {w = index of the current window, c = its units, p = previous window's units};
--          expires at the end of the next window, when it no longer weighs.
-- ARGV     cost, limit, size (microseconds)
-- Returns  {allowed 0|1, remaining, reset_after us, retry_after us}
local cost = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local size = tonumber(ARGV[3])
local epsilon = 1e-9

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local index = math.floor(now / size)
local start = index * size
local state = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local stored = tonumber(state[1])
local current, previous = 0, 0
if stored == index then
  current = tonumber(state[2])
  previous = tonumber(state[3])
elseif stored == index - 1 then
  previous = tonumber(state[2])
end

local estimate = previous * (1 - (now - start) / size) + current
if estimate + cost <= limit + epsilon then
  redis.call('HSET', KEYS[1], 'w', index, 'c', current + cost, 'p', previous)
  redis.call('PEXPIREAT', KEYS[1], math.ceil((start + 2 * size) / 1000))
  return {1, math.max(0, math.floor(limit - estimate - cost + epsilon)), start + 2 * size - now, 0}
end

local retry_after
if current + cost > limit then
  -- This window alone is full: wait for the next one, until this window's
  -- count, then weighing as the previous one, has faded enough.
  retry_after = start + size - now + size * math.max(0, 1 - (limit - cost) / current)
else
  retry_after = start + size * (1 - (limit - current - cost) / previous) - now
end
local reset_after = start + size - now
if current > 0 then
  reset_after = start + 2 * size - now
end
return {0, math.max(0, math.floor(limit - estimate + epsilon)), reset_after, math.ceil(retry_after)}
