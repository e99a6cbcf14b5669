-- Write-through: a new version fences off fills that loaded the old state, the
-- value (encoded under that version) replaces the old one, every process drops
-- its local copy.
-- KEYS[1] value  KEYS[2] version
-- ARGV[1] new version  ARGV[2] data  ARGV[3] ttl ms  ARGV[4] version ttl ms
-- ARGV[5] channel  ARGV[6] key
redis.call('SET', KEYS[2], ARGV[1], 'PX', math.max(tonumber(ARGV[3]), tonumber(ARGV[4])))
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
