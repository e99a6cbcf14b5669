-- Invalidate after a database commit: a new version fences off fills that loaded
-- the old state, the value goes, every process drops its local copy.
-- KEYS[1] value  KEYS[2] version
-- ARGV[1] new version  ARGV[2] version ttl ms  ARGV[3] channel  ARGV[4] key
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
