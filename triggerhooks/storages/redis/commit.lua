-- The Redis backend's one script: read the part of a session a plan names, check what a
-- transition relied on, and commit its changes. It only reads, checks and writes: every rule
-- stays in Python (triggerhooks.core.rules). Its KEYS, ARGV and replies are described, and
-- built and read by name, in protocol.py next to this file.
local cfg, idx, kw, ts, tv, inst, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]

local function hmget(key, fields)
  local out = {}
  for s = 1, #fields, 1000 do
    local part = redis.call('HMGET', key, unpack(fields, s, math.min(s + 999, #fields)))
    for i = 1, #part do out[#out + 1] = part[i] end
  end
  return out
end

local function hset(key, items)
  for s = 1, #items, 1000 do
    redis.call('HSET', key, unpack(items, s, math.min(s + 999, #items)))
  end
end

local n = tonumber(ARGV[5])

local function snapshot()
  local head = redis.call('HMGET', meta, 'cv', 'counted', 'unresolved')
  local finalized = redis.call('HEXISTS', kw, 'sessionFinalized')
  if ARGV[3] == '1' then
    return {head, finalized, redis.call('HGETALL', cfg), redis.call('HGETALL', ts),
            redis.call('HGETALL', tv), redis.call('HKEYS', kw), redis.call('HGET', meta, 'order')}
  end
  local limit = tonumber(ARGV[2])
  local trigger = ARGV[4]
  local tasks, seen, triggers, concerned = {}, {}, {}, 0
  if trigger ~= '' then
    local entry = redis.call('HGET', idx, trigger)
    if entry then
      local decoded = cjson.decode(entry)
      for _, task in ipairs(decoded[1]) do
        seen[task] = true
        tasks[#tasks + 1] = task
      end
      triggers = decoded[2]
      concerned = #tasks
    end
    triggers[#triggers + 1] = trigger
  end
  local names = {}
  for i = 1, n do
    names[i] = ARGV[5 + i]
    local task = ARGV[5 + n + i]
    if not seen[task] then
      seen[task] = true
      tasks[#tasks + 1] = task
    end
  end
  local configs, states, versions, fired, instances = {}, {}, {}, {}, {}
  if #tasks > 0 then
    configs = hmget(cfg, tasks)
    states = hmget(ts, tasks)
    versions = hmget(tv, tasks)
  end
  if #triggers > 0 then
    local values = hmget(kw, triggers)
    for i = 1, #triggers do
      local value = values[i]
      if value and #value > limit then fired[i] = #value else fired[i] = value end
    end
  end
  if n > 0 then instances = hmget(inst, names) end
  return {head, finalized, concerned, tasks, configs, states, versions, triggers, fired, instances}
end

local mode = ARGV[1]
if mode == 'r' then return {'snapshot', snapshot()} end

local state = redis.call('HMGET', meta, 'tx', 'cv', 'counted', 'unresolved')
local recent = state[1] or ''
local count, open = tonumber(state[3] or '0'), tonumber(state[4] or '0')
local finalized = redis.call('HEXISTS', kw, 'sessionFinalized')
local function counters(status)
  return {status, count, open, finalized}
end

local pos = 6 + 2 * n
local txid = ARGV[pos]
if mode == 'c' and string.find(recent, txid, 1, true) then return counters('done') end
if (state[2] or '') ~= ARGV[pos + 1] then
  return {'conflict', 'configuration', snapshot()}
end
local new_cv, configured, ttl = ARGV[pos + 2], ARGV[pos + 3], ARGV[pos + 4]
local delta, counted, unresolved = tonumber(ARGV[pos + 5]), ARGV[pos + 6], ARGV[pos + 7]
pos = pos + 8

local function group(width)
  local count = tonumber(ARGV[pos])
  local items = {}
  for i = 1, count * width do items[i] = ARGV[pos + i] end
  pos = pos + count * width + 1
  return items
end

local checks = group(2)
if #checks > 0 then
  local tasks = {}
  for i = 1, #checks, 2 do tasks[#tasks + 1] = checks[i] end
  local current = hmget(tv, tasks)
  for i = 1, #tasks do
    if (current[i] or '0') ~= checks[2 * i] then
      return {'conflict', 'state of ' .. tasks[i], snapshot()}
    end
  end
end
local unfired = group(1)
for i = 1, #unfired do
  if redis.call('HEXISTS', kw, unfired[i]) == 1 then
    return {'conflict', 'fired ' .. unfired[i], snapshot()}
  end
end
local hashed = group(2)
for i = 1, #hashed, 2 do
  local value = redis.call('HGET', kw, hashed[i])
  if not value or redis.sha1hex(value) ~= hashed[i + 1] then
    return {'conflict', 'kwargs of ' .. hashed[i], snapshot()}
  end
end
if mode == 'v' then return counters('ok') end

local fired, instances, states, metadata = group(2), group(2), group(2), group(2)
if #fired > 0 then
  hset(kw, fired)
  for i = 1, #fired, 2 do
    if fired[i] == 'sessionFinalized' then finalized = 1 end
  end
end
if #instances > 0 then hset(inst, instances) end
if #states > 0 then
  hset(ts, states)
  for i = 1, #states, 2 do redis.call('HINCRBY', tv, states[i], 1) end
end
if configured == '1' then
  local configs, index = group(2), group(2)
  redis.call('DEL', cfg, idx)
  if #configs > 0 then hset(cfg, configs) end
  if #index > 0 then hset(idx, index) end
  redis.call('HSET', meta, 'order', ARGV[pos])
end
if new_cv ~= '' then redis.call('HSET', meta, 'cv', new_cv) end
if counted ~= '' then count = tonumber(counted) end
if unresolved ~= '' then open = tonumber(unresolved) end
if counted ~= '' or unresolved ~= '' or delta ~= 0 then
  open = open + delta
  redis.call('HSET', meta, 'counted', count, 'unresolved', open)
end
if #metadata > 0 then hset(meta, metadata) end
redis.call('HSET', meta, 'tx', txid .. ' ' .. string.sub(recent, 1, 17 * 7))
if ttl ~= '' then
  local ms = tonumber(ttl)
  for i = 1, 7 do redis.call('PEXPIRE', KEYS[i], ms) end
end
return counters('ok')
