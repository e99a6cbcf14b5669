-- Write-behind, once the write is durable in the stream: show it in the cache and
-- mark it pending so no fill stores the database's older state over it. Refused
-- if a newer write to the key is already staged.
-- KEYS[1] value  KEYS[2] version  KEYS[3] staged
-- ARGV[1] new version  ARGV[2] data  ARGV[3] ttl ms  ARGV[4] version ttl ms
-- ARGV[5] channel  ARGV[6] key  ARGV[7] write id (stream id "ms-seq")
local function order(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local current = redis.call('GET', KEYS[3])
if current then
  local cms, cseq = order(string.sub(current, 3))
  local ms, seq = order(ARGV[7])
  if cms > ms or (cms == ms and cseq >= seq) then
    return 0
  end
end
local keep = math.max(tonumber(ARGV[3]), tonumber(ARGV[4]))
redis.call('SET', KEYS[3], 'P:' .. ARGV[7], 'PX', keep)
redis.call('SET', KEYS[2], ARGV[1], 'PX', keep)
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
