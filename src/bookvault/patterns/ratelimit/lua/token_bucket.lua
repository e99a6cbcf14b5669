-- Token bucket with Spring Cloud Gateway's parameters: `capacity` tokens at
-- most, refilled at `rate` tokens per second, to the microsecond.
--
-- KEYS[1]  hash {t = tokens left, ts = when, in microseconds}; expires when
--          the bucket would be full again, since a missing key is a full bucket.
-- ARGV     cost, capacity, rate (tokens per second)
-- Returns  {allowed 0|1, remaining, reset_after us, retry_after us}
local cost = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local per_us = tonumber(ARGV[3]) / 1000000
local epsilon = 1e-9

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local tokens = capacity
local state = redis.call('HMGET', KEYS[1], 't', 'ts')
if state[1] then
  -- max(): a server clock stepped backwards must not drain the bucket.
  tokens = math.min(capacity, tonumber(state[1]) + math.max(0, now - tonumber(state[2])) * per_us)
end

if tokens + epsilon < cost then
  return {
    0,
    math.floor(tokens + epsilon),
    math.ceil((capacity - tokens) / per_us),
    math.ceil((cost - tokens) / per_us),
  }
end

tokens = tokens - cost
local full_after = math.ceil((capacity - tokens) / per_us)
redis.call('HSET', KEYS[1], 't', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(full_after / 1000) + 1)
return {1, math.max(0, math.floor(tokens + epsilon)), full_after, 0}
