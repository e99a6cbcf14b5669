-- After a miss: the value if someone stored it meanwhile; otherwise the key's
-- version (created if missing) and whether this caller took the fill lease.
-- KEYS[1] value  KEYS[2] version  KEYS[3] lease
-- ARGV[1] version to create if none  ARGV[2] lease token  ARGV[3] lease ttl ms
-- ARGV[4] version ttl ms
local value = redis.call('GET', KEYS[1])
if value then
  return {value}
end
local version = redis.call('GET', KEYS[2])
if not version then
  version = ARGV[1]
  redis.call('SET', KEYS[2], version, 'PX', ARGV[4])
end
local leased = 0
if redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[3]) then
  leased = 1
end
return {false, version, leased}
