-- Write-behind write reached the database. If it is the staged one, fills may
-- resume. If a newer write is staged, that one settles the key later. Otherwise
-- the cache never showed this write (the writer died between enqueue and stage):
-- drop what the cache holds so the next read loads the database's state.
-- KEYS[1] value  KEYS[2] version  KEYS[3] staged
-- ARGV[1] write id  ARGV[2] new version  ARGV[3] version ttl ms  ARGV[4] channel
-- ARGV[5] key
local function order(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local current = redis.call('GET', KEYS[3])
if current == 'P:' .. ARGV[1] then
  redis.call('SET', KEYS[3], 'S:' .. ARGV[1], 'KEEPTTL')
  return 1
end
if current then
  local cms, cseq = order(string.sub(current, 3))
  local ms, seq = order(ARGV[1])
  if cms > ms or (cms == ms and cseq > seq) then
    return 0
  end
end
redis.call('SET', KEYS[3], 'S:' .. ARGV[1], 'PX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 2
