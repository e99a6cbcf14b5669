-- Fixed window: at most `limit` units per aligned window of `size` microseconds.
--
-- KEYS[1]  hash {w = index of the window, n = units admitted in it};
--          expires when its window ends.
-- ARGV     cost, limit, size (microseconds)
-- Returns  {allowed 0|1, remaining, reset_after us, retry_after us}
local cost = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local size = tonumber(ARGV[3])

-- The server's clock, so that every client process agrees on the windows.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local index = math.floor(now / size)
local window_end = (index + 1) * size
local reset_after = window_end - now

-- The window index is stored rather than trusting expiry alone: a key read in
-- the millisecond its TTL ends still holds the previous window's count.
local state = redis.call('HMGET', KEYS[1], 'w', 'n')
local used = 0
if tonumber(state[1]) == index then
  used = tonumber(state[2])
end

if used + cost > limit then
  return {0, limit - used, reset_after, reset_after}
end

if used == 0 then
  redis.call('HSET', KEYS[1], 'w', index, 'n', cost)
  redis.call('PEXPIREAT', KEYS[1], math.ceil(window_end / 1000))
else
  redis.call('HINCRBY', KEYS[1], 'n', cost)
end
return {1, limit - used - cost, reset_after, 0}
