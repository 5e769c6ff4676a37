-- maasctl rate limiter: settle a token reservation (docs/rate-limits.md,
-- "Token rules") in every token window it was counted in, in one atomic call.
--
-- KEYS[i]      the hash of token rule i's window (as in window.lua)
-- ARGV[1]      '' (use Redis TIME) or a fixed now in ms (deterministic tests)
-- ARGV[2]      when the reservation was counted (the `now` window.lua returned)
-- ARGV[3]      tokens reserved
-- ARGV[4]      tokens used (the upstream's usage)
-- ARGV[2i+3]   rule i's bucket width (ms) when the reservation was counted
-- ARGV[2i+4]   rule i's duration now, ms
--
-- Used less than reserved: the difference is taken back from the bucket
-- the reservation was counted in, if that bucket is still counted (never
-- more than it holds). Used more: the excess is counted now, like a hit.
-- Returns the number of windows changed.

local fixed = tonumber(ARGV[1])
local now = fixed
if not fixed then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local at, reserved, used = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local changed = 0
for i = 1, #KEYS do
  local key = KEYS[i]
  local width, dur = tonumber(ARGV[2 * i + 3]), tonumber(ARGV[2 * i + 4])
  if used < reserved then
    local e = (math.floor(at / width) + 1) * width
    local c = tonumber(redis.call('HGET', key, e))
    if c and c > 0 and e + dur > now then
      local take = math.min(c, reserved - used)
      redis.call('HINCRBY', key, e, -take)
      local s = tonumber(redis.call('HGET', key, 's')) or take
      redis.call('HSET', key, 's', math.max(s - take, 0))
      changed = changed + 1
    end
  elseif used > reserved then
    local w = math.max(math.floor(dur / 100), 1)
    local e = (math.floor(now / w) + 1) * w
    local m = redis.call('HMGET', key, 's', 'o', 'n')
    local s = (tonumber(m[1]) or 0) + (used - reserved)
    local o = math.min(tonumber(m[2]) or e, e)
    local n = math.max(tonumber(m[3]) or e, e)
    redis.call('HINCRBY', key, e, used - reserved)
    redis.call('HSET', key, 's', s, 'o', o, 'n', n)
    if not fixed then redis.call('PEXPIRE', key, n + dur - now) end
    changed = changed + 1
  end
end
return changed
