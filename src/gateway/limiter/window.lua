-- maasctl rate limiter: check every window a request matches, then count
-- all of them or none, in one atomic call (docs/rate-limits.md).
--
-- KEYS[i]      the hash of rule i's window, in rule-id order
-- ARGV[1]      'hit' (admit and count if every window has room) or 'peek'
-- ARGV[2]      '' (use Redis TIME) or a fixed now in ms (deterministic tests;
--              keys then get no expiry, which runs on real time)
-- ARGV[3i]     rule i's limit
-- ARGV[3i+1]   rule i's duration, ms
-- ARGV[3i+2]   what the request counts in rule i: 1 (a request rule) or
--              its token reservation (a token rule); it is admitted when
--              used + cost <= limit in every window
--
-- A window hash holds one field per bucket, named by the bucket's end
-- (exclusive, ms of Redis TIME) with its count, plus 's' (sum of the
-- buckets), 'o' (oldest bucket end) and 'n' (newest bucket end). Buckets are
-- 1% of the duration wide. A bucket ending at e is counted while
-- now < e + duration, so every request of (now - duration, now] is counted
-- and none older than now - duration - width.
--
-- Returns {admitted 1|0, blocking rule index (0 = none), now,
--          then per rule: used, ms until room, ms until fully reset}.

local fixed = tonumber(ARGV[2])
local now = fixed
if not fixed then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local hit = ARGV[1] == 'hit'
local n = #KEYS

-- Current sum, oldest and newest bucket end of a window, after dropping
-- the buckets that left it.
local function load(key, dur)
  local m = redis.call('HMGET', key, 's', 'o', 'n')
  local sum, oldest, newest = tonumber(m[1]) or 0, tonumber(m[2]), tonumber(m[3])
  if oldest and oldest + dur <= now then
    local all = redis.call('HGETALL', key)
    local dead = {}
    sum, oldest = 0, nil
    for j = 1, #all, 2 do
      local e = tonumber(all[j])
      if e then
        if e + dur <= now then
          dead[#dead + 1] = all[j]
        else
          sum = sum + tonumber(all[j + 1])
          if not oldest or e < oldest then oldest = e end
        end
      end
    end
    if #dead > 0 then redis.call('HDEL', key, unpack(dead)) end
    if oldest then
      redis.call('HSET', key, 's', sum, 'o', oldest)
    else
      redis.call('DEL', key)
      newest = nil
    end
  end
  return sum, oldest, newest
end

-- Milliseconds until the window holds fewer than limit requests.
local function room(key, sum, limit, dur)
  if sum < limit then return 0 end
  if limit < 1 then return dur end
  local all = redis.call('HGETALL', key)
  local live = {}
  for j = 1, #all, 2 do
    local e = tonumber(all[j])
    if e and e + dur > now then live[#live + 1] = { e, tonumber(all[j + 1]) } end
  end
  table.sort(live, function(a, b) return a[1] < b[1] end)
  local left = sum
  for _, b in ipairs(live) do
    left = left - b[2]
    if left < limit then return b[1] + dur - now end
  end
  return dur
end

-- Milliseconds until the window has room for cost more: when it holds
-- fewer than limit - cost + 1 (a cost above the limit never fits: then the
-- time until the window is empty).
local function room_for(key, sum, newest, limit, dur, cost)
  if cost > limit then
    return (sum > 0 and newest) and (newest + dur - now) or 0
  end
  return room(key, sum, limit - cost + 1, dur)
end

local limits, durs, costs, sums, oldests, newests, rooms = {}, {}, {}, {}, {}, {}, {}
local blocking, wait = 0, -1
for i = 1, n do
  limits[i] = tonumber(ARGV[3 * i])
  durs[i] = tonumber(ARGV[3 * i + 1])
  costs[i] = tonumber(ARGV[3 * i + 2])
  sums[i], oldests[i], newests[i] = load(KEYS[i], durs[i])
  rooms[i] = room_for(KEYS[i], sums[i], newests[i], limits[i], durs[i], costs[i])
  if sums[i] + costs[i] > limits[i] and rooms[i] > wait then blocking, wait = i, rooms[i] end
end

local admitted = hit and blocking == 0
if admitted then
  for i = 1, n do
    local key, dur = KEYS[i], durs[i]
    local width = math.max(math.floor(dur / 100), 1)
    local e = (math.floor(now / width) + 1) * width
    redis.call('HINCRBY', key, e, costs[i])
    sums[i] = sums[i] + costs[i]
    oldests[i] = math.min(oldests[i] or e, e)
    newests[i] = math.max(newests[i] or e, e)
    redis.call('HSET', key, 's', sums[i], 'o', oldests[i], 'n', newests[i])
    if not fixed then redis.call('PEXPIRE', key, newests[i] + dur - now) end
    rooms[i] = room_for(key, sums[i], newests[i], limits[i], dur, costs[i])
  end
end

local out = { admitted and 1 or 0, blocking, now }
for i = 1, n do
  out[#out + 1] = sums[i]
  out[#out + 1] = rooms[i]
  out[#out + 1] = (sums[i] > 0 and newests[i]) and (newests[i] + durs[i] - now) or 0
end
return out
