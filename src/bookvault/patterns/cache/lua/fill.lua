-- Store a loaded value only if nothing changed the key since the load began:
-- the version is still the one read before loading, and no write-behind write
-- is pending (the database would not have it yet). Releases the caller's lease.
-- KEYS[1] value  KEYS[2] version  KEYS[3] lease  KEYS[4] staged
-- ARGV[1] expected version  ARGV[2] data  ARGV[3] ttl ms  ARGV[4] lease token ('' if none)
local stored = 0
local staged = redis.call('GET', KEYS[4])
local pending = staged and string.sub(staged, 1, 2) == 'P:'
if not pending and redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  -- The version must outlive the value, or refreshes of the value would be refused.
  if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[3]) then
    redis.call('PEXPIRE', KEYS[2], ARGV[3])
  end
  stored = 1
end
if ARGV[4] ~= '' and redis.call('GET', KEYS[3]) == ARGV[4] then
  redis.call('DEL', KEYS[3])
end
return stored
