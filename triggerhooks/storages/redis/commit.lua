-- The Redis backend's one script: read the part of a session a plan names, record a firing
-- that needs no rule to be recorded, check what a transition relied on, and commit its
-- changes. It only reads, counts, checks and writes: every rule stays in Python
-- (triggerhooks.core.rules). Its KEYS, ARGV and replies are described, and built and read by
-- name, in protocol.py next to this file.
--
-- Cost: a record (mode 'f') is the call a cold fire waits for, so it makes as few
-- redis.calls and builds as few tables as it can. Replies are flat arrays: Redis converts
-- each table of a reply separately, at about a microsecond apiece. What every call runs is
-- kept small as well: each closure costs about what a table does, and each local of this
-- chunk it captures about as much again, so the code a record runs is written out where it
-- runs, or in helpers that capture little; a table is built at about its final size (one
-- that grows is rebuilt at each power of two); tonumber (a strtod) is avoided where a
-- comparison of text does.
local cfg, idx, kw, ts, tv, inst, meta, mc, fk, fst, turn, active =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10],
  KEYS[11], KEYS[12]
local mode, trigger, key = ARGV[1], ARGV[4], ARGV[5]
local n = ARGV[6] == '0' and 0 or tonumber(ARGV[6])
local pos = 7 + 2 * n
local token, turn_ms, ttl = ARGV[pos], ARGV[pos + 1], ARGV[pos + 2]
pos = pos + 3

local function hmget(key, fields)
  if #fields == 1 then return {redis.call('HGET', key, fields[1])} end
  if #fields == 0 then return {} end
  if #fields <= 1000 then return redis.call('HMGET', key, unpack(fields)) end
  local out = {}
  for s = 1, #fields, 1000 do
    local part = redis.call('HMGET', key, unpack(fields, s, math.min(s + 999, #fields)))
    for i = 1, #part do out[#out + 1] = part[i] end
  end
  return out
end

-- Writes the count of ``items``, then the items themselves, into the flat reply ``out``
-- after ``size`` items; the reply's size after them.
local function put_list(out, size, items)
  local count = #items
  out[size + 1] = count
  for i = 1, count do out[size + 1 + i] = items[i] end
  return size + 1 + count
end

local function set_of(list)
  local out = {}
  for i = 1, #list do out[list[i]] = true end
  return out
end

-- Adds ``t`` to ``triggers`` unless listed; ``listed``: the set of ``triggers``, built on
-- first use (most reads add nothing), returned.
local function want(triggers, listed, t)
  if not listed then listed = set_of(triggers) end
  if not listed[t] then
    listed[t] = true
    triggers[#triggers + 1] = t
  end
  return listed
end

-- What a transition reads, as a flat reply (see protocol.py) starting with ``status`` (and
-- ``what``, if any): the configuration token, the counters and whether the session is
-- finalized, the record of the plan's fire key; then the tasks the trigger concerns
-- (configuration, state, version, count of missing triggers), the fired state of their
-- unless triggers, for a task that is (or is about to be) ready the kwargs of its triggers,
-- their first firings and its unstarted instances, and the plan's instances. ``head``: the
-- configuration token and the counters, when the caller read them already; ``raw`` and
-- ``entry``: the index entry of the plan's trigger (its JSON, and decoded), likewise.
-- (The keys and the plan are read from KEYS and ARGV: captured, they would cost every call.)
local function snapshot(status, what, recorded, head, wrote, raw, entry)
  local kw, meta, full, trigger, key = KEYS[3], KEYS[7], ARGV[3], ARGV[4], ARGV[5]
  local n = ARGV[6] == '0' and 0 or tonumber(ARGV[6])
  head = head or redis.call('HMGET', meta, 'cv', 'counted', 'unresolved')
  local record = false
  if key ~= '' then record = redis.call('HGET', KEYS[9], key) end
  -- (Sized for a trigger that concerns a task or two.)
  local out = {status, what, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil,
               nil, nil, nil, nil, nil, nil, nil, nil, nil}
  local size = what and 2 or 1
  if full == '1' then
    out[size + 1], out[size + 2], out[size + 3] = head[1], head[2], head[3]
    out[size + 4] = redis.call('HEXISTS', kw, 'sessionFinalized')
    out[size + 5], out[size + 6] = record, redis.call('HGET', meta, 'order')
    size = put_list(out, size + 6, redis.call('HGETALL', KEYS[1]))
    size = put_list(out, size, redis.call('HGETALL', KEYS[4]))
    size = put_list(out, size, redis.call('HGETALL', KEYS[5]))
    size = put_list(out, size, redis.call('HKEYS', kw))
    put_list(out, size, redis.call('HGETALL', KEYS[8]))
    return out
  end
  if raw == nil then
    raw = trigger ~= '' and redis.call('HGET', KEYS[2], trigger)
    entry = raw and cjson.decode(raw)
  end
  -- (The entry is this call's own: its lists are extended in place.)
  local tasks, triggers, listed, concerned
  if entry then
    tasks, triggers, concerned = entry[1], entry[2], #entry[1]
  else
    tasks, triggers, concerned = {}, {}, 0
  end
  if n > 0 then
    local seen = set_of(tasks)
    for i = 1, n do
      local task = ARGV[6 + n + i]
      if not seen[task] then
        seen[task] = true
        tasks[#tasks + 1] = task
      end
    end
  end
  local count = #tasks
  -- (Whether the session is finalized, at size + 4, is read with the kwargs below.)
  out[size + 1], out[size + 2], out[size + 3] = head[1], head[2], head[3]
  out[size + 4], out[size + 5], out[size + 6], out[size + 7] = 0, record, raw or false, count
  local finalized = size + 4
  -- Task i's name, configuration, state, version and count of missing triggers.
  local names = size + 7
  local configs, states, missing = names + count, names + 2 * count, names + 4 * count
  for i = 1, count do out[names + i] = tasks[i] end
  if count == 1 then
    local task = tasks[1]
    out[configs + 1], out[states + 1] = redis.call('HGET', KEYS[1], task),
                                        redis.call('HGET', KEYS[4], task)
    out[states + 2] = redis.call('HGET', KEYS[5], task)
    out[missing + 1] = redis.call('HGET', KEYS[8], task)
  elseif count > 1 then
    local at = configs
    for _, hash in ipairs({KEYS[1], KEYS[4], KEYS[5], KEYS[8]}) do
      local values = hmget(hash, tasks)
      for i = 1, count do out[at + i] = values[i] end
      at = at + count
    end
  end
  local ready, waiting = false, nil
  if concerned > 0 then
    local first = not recorded and redis.call('HEXISTS', kw, trigger) == 0
    local requiring = first and set_of(entry[3])
    local every = #entry[4] > 0 and set_of(entry[4])
    for i = 1, concerned do
      local task, left = out[names + i], out[missing + i]
      left = left and tonumber(left)
      if left and requiring and requiring[task] then left = left - 1 end
      local state = out[states + i]
      local may = (not state) or string.sub(state, 1, 6) == '{"w":1'
      local each = every and every[task]
      -- (An andEvery firing's new instance holds the kwargs of the triggers fired so far.)
      if (each and left and left > 0) or (left == 0 and (may or each)) then
        ready = true
        -- The task's requires: its after triggers but its andEvery one.
        local config = out[configs + i] and cjson.decode(out[configs + i])
        for _, t in ipairs(config and config.after or {}) do
          if t ~= config.andEvery then listed = want(triggers, listed, t) end
        end
      end
      if left == 0 and (may or each) and state then
        waiting = waiting or {}
        for name, status in pairs(cjson.decode(state).open) do
          if status == 'unstarted' and #waiting < 1000 then waiting[#waiting + 1] = name end
        end
      end
    end
  end
  -- (``wrote``: this call recorded the firing, so its kwargs are those the caller sent.)
  if trigger ~= '' and not wrote then listed = want(triggers, listed, trigger) end
  local wanted = #triggers
  size = missing + count + 1
  out[size] = wanted
  if wanted == 0 then
    out[finalized] = redis.call('HEXISTS', kw, 'sessionFinalized')
    out[size + 1] = 0
    size = size + 1
  else
    -- Whether the session is finalized comes with the kwargs: one call less.
    triggers[wanted + 1] = 'sessionFinalized'
    local values = hmget(kw, triggers)
    triggers[wanted + 1] = nil
    out[finalized] = values[wanted + 1] and 1 or 0
    local limit = tonumber(ARGV[2])
    for i = 1, wanted do
      local value = values[i]
      if value and #value > limit then value = #value end
      out[size + i], out[size + wanted + i] = triggers[i], value
    end
    size = size + 2 * wanted
    -- The first firings only matter to instances a ready task schedules.
    if ready then
      local firsts = hmget(KEYS[10], triggers)
      for i = 1, wanted do
        local value = firsts[i]
        if value and #value > limit then firsts[i] = #value end
      end
      size = put_list(out, size, firsts)
    else
      out[size + 1] = 0
      size = size + 1
    end
  end
  if n > 0 then
    local planned = {}
    for i = 1, n do planned[i] = ARGV[6 + i] end
    size = put_list(out, size, hmget(KEYS[6], planned))
  else
    out[size + 1] = 0
    size = size + 1
  end
  if not waiting then
    out[size + 1] = 0
    return out
  end
  size = put_list(out, size, waiting)
  local data = hmget(KEYS[6], waiting)
  for i = 1, #waiting do out[size + i] = data[i] end
  return out
end

local function expire()
  local ms = tonumber(ttl)
  for i = 1, 10 do redis.call('PEXPIRE', KEYS[i], ms) end
end

-- Resends: a writing call carries its writer's id and a number above that writer's earlier
-- calls ('<writer>:<number>'). meta's field 'w:<writer>' keeps the writer's last number,
-- followed by '-' when that call applied nothing (it lost a check, or waited for the turn),
-- or by the renumbering shifts of a commit that had any. A call whose number is not above
-- the last one is a copy of a call answered already (sent again after a
-- connection error, or its first send came late) and applies nothing: it answers 'applied'
-- (with the shifts) when that was the applied call, else 'refused'. Every answer to a new
-- number records it, so a late copy of a call that applied nothing stays out too.
-- (Compared as numbers: Lua compares text by the server's locale.)
local function stamped(last, number)
  if last then
    local seen, rest = string.match(last, '^(%d+)(.*)$')
    if tonumber(seen) >= tonumber(number) then
      if seen == number and string.sub(rest, 1, 1) ~= '-' then return 'applied', rest end
      return 'refused'
    end
  end
  return nil
end
-- ``reply``, after recording that the writer's call (``field``: meta's field of the
-- writer, none for a call without a stamp) applied nothing.
local function unapplied(reply, field, number)
  if field then
    redis.call('HSET', meta, field, number .. '-')
    if ttl ~= '' then redis.call('PEXPIRE', meta, tonumber(ttl)) end
  end
  return reply
end
-- The session's member of the set of sessions with work (its uid as escaped in its keys).
local function tag()
  return string.match(meta, '{([^}]*)}:meta$')
end

if mode == 'r' then return snapshot('snapshot', nil, false) end

if mode == 'f' then
  -- A firing no rule has to see first: recorded at once, counting down the tasks that
  -- require the trigger, with the provisional record of its fire key. A trigger that
  -- brings its own instance (andEvery) and sessionFinalized are left to the engine, and a
  -- key recorded before means a repeat: nothing is recorded, the snapshot carries its record.
  -- (Recording changes neither the configuration token nor the counters: they are read once.)
  local writer, number = string.match(ARGV[pos], '^(.*):(%d+)$')
  local field = 'w:' .. writer
  local state = redis.call('HMGET', meta, 'cv', 'counted', 'unresolved', field)
  local seen = stamped(state[4], number)
  if seen == 'applied' then return snapshot('recorded', nil, true, state) end
  if seen then return {'busy'} end
  local raw = trigger ~= '' and redis.call('HGET', idx, trigger)
  local entry = raw and cjson.decode(raw)
  if (key ~= '' and redis.call('HEXISTS', fk, key) == 1) or trigger == 'sessionFinalized'
      or (entry and #entry[4] > 0) then
    return unapplied(snapshot('snapshot', nil, false, state, false, raw, entry), field, number)
  end
  -- Another writer holds the session's turn (see below).
  local holder = redis.call('GET', turn)
  if holder and holder ~= token then return unapplied({'busy'}, field, number) end
  local first = redis.call('HSET', kw, trigger, ARGV[pos + 1]) == 1
  if first then
    -- The record of its first firing: what waiting instances created before it received.
    redis.call('HSETNX', fst, trigger, '{"at":"' .. ARGV[pos + 2] .. '","kwargs":' .. ARGV[pos + 1] .. '}')
    if entry then
      for _, task in ipairs(entry[3]) do
        if redis.call('HEXISTS', mc, task) == 1 and redis.call('HINCRBY', mc, task, -1) == 0 then
          -- Ready now, scheduled by this writer's next call: if that never comes (its
          -- process died), a sweep finds the session here and schedules it.
          redis.call('SADD', active, tag())
        end
      end
    end
  end
  if key ~= '' then redis.call('HSET', fk, key, ARGV[pos + 3]) end
  redis.call('HSET', meta, field, number)
  if ttl ~= '' then expire() end
  return snapshot('recorded', nil, true, state, true, raw, entry)
end

-- The writer's id and the number of its call, and its field in meta (none without a stamp).
local writer, number, field = '', '', nil
if ARGV[pos] ~= '' and (mode == 'c' or mode == 'q') then
  writer, number = string.match(ARGV[pos], '^(.*):(%d+)$')
  field = 'w:' .. writer
end
local function applied(shifts)
  local value = number
  if shifts and #shifts > 0 then value = number .. ' ' .. cjson.encode(shifts) end
  redis.call('HSET', meta, field, value)
end

-- Turns: a writer that kept losing holds the session's turn for a moment; every other
-- writer waits ('busy') until it has committed, so that it cannot lose again.
local holder = nil
local function busy()
  if holder == nil then holder = redis.call('GET', turn) end
  return holder and holder ~= token
end

local function hset(key, items)
  for s = 1, #items, 1000 do
    redis.call('HSET', key, unpack(items, s, math.min(s + 999, #items)))
  end
end

local function conflict(what)
  return unapplied(snapshot('conflict', what, false), field, number)
end
local function release()
  if token ~= '' and redis.call('GET', turn) == token then redis.call('DEL', turn) end
end

if mode == 'u' then
  release()
  return {'released'}
end
if mode == 'q' then
  -- Was the stamped call applied? If not, its number is taken now: it never will be.
  local seen = stamped(redis.call('HGET', meta, field), number)
  if seen == 'applied' then return {'applied'} end
  if not seen then unapplied(nil, field, number) end
  return {'refused'}
end

local state
if mode == 'c' then
  state = redis.call('HMGET', meta, 'cv', 'counted', 'unresolved', field)
else
  state = redis.call('HMGET', meta, 'cv', 'counted', 'unresolved')
end
local count, open = tonumber(state[2] or '0'), tonumber(state[3] or '0')
local finalized = redis.call('HEXISTS', kw, 'sessionFinalized')
local function counters(status, shifted)
  local out = {status, count, open, finalized}
  for i = 1, #(shifted or {}) do out[4 + i] = shifted[i] end
  return out
end

if mode == 'c' then
  local seen, rest = stamped(state[4], number)
  if seen == 'applied' then
    return counters('done', rest ~= '' and cjson.decode(string.sub(rest, 2)) or {})
  end
  if seen then return {'busy'} end
end
if busy() then return unapplied({'busy'}, field, number) end
if token ~= '' and not holder then redis.call('SET', turn, token, 'PX', turn_ms) end
if (state[1] or '') ~= ARGV[pos + 1] then
  return conflict('configuration')
end
local new_cv, configured, fired_count = ARGV[pos + 2], ARGV[pos + 3], ARGV[pos + 4]
local counted, unresolved = ARGV[pos + 5], ARGV[pos + 6]
pos = pos + 7
-- The plan's fire key: recorded by another writer since it was read, this commit would
-- apply the keyed firing a second time.
if key ~= '' then
  local record = redis.call('HGET', fk, key)
  if (record and redis.sha1hex(record) or '') ~= ARGV[pos] then
    return conflict('fire key')
  end
  pos = pos + 1
end
if fired_count ~= '' and redis.call('HLEN', kw) ~= tonumber(fired_count) then
  return conflict('fired triggers')
end

local function group(width)
  local size = tonumber(ARGV[pos])
  local items = {}
  for i = 1, size * width do items[i] = ARGV[pos + i] end
  pos = pos + size * width + 1
  return items
end

local checks = group(2)
if #checks > 0 then
  local tasks = {}
  for i = 1, #checks, 2 do tasks[#tasks + 1] = checks[i] end
  local current = hmget(tv, tasks)
  for i = 1, #tasks do
    if (current[i] or '0') ~= checks[2 * i] then
      return conflict('instances of ' .. tasks[i])
    end
  end
end
local seen = group(2)
for i = 1, #seen, 2 do
  local value = redis.call('HGET', inst, seen[i])
  local now = value and redis.sha1hex(value) or ''
  if now ~= seen[i + 1] then return conflict('instance ' .. seen[i]) end
end
local unfired = group(1)
for i = 1, #unfired do
  if redis.call('HEXISTS', kw, unfired[i]) == 1 then
    return conflict('fired ' .. unfired[i])
  end
end
local hashed = group(2)
for i = 1, #hashed, 2 do
  local value = redis.call('HGET', kw, hashed[i])
  if not value or redis.sha1hex(value) ~= hashed[i + 1] then
    return conflict('kwargs of ' .. hashed[i])
  end
end
-- Tasks the transition found still waiting, with how far it counts them down: had other
-- firings brought one to zero meanwhile, this commit would be the one to make it ready.
local waiting = group(2)
for i = 1, #waiting, 2 do
  local left = redis.call('HGET', mc, waiting[i])
  if left and tonumber(left) - tonumber(waiting[i + 1]) <= 0 then
    return conflict('ready ' .. waiting[i])
  end
end
if mode == 'v' then
  release()
  return counters('ok')
end

local fired, firsts, first = group(2), group(2), group(2)
local instances, states, metadata = group(2), group(2), group(2)
local fire_record = ''
if key ~= '' then
  fire_record = ARGV[pos]
  pos = pos + 1
end
-- A task found not blocked, given instances that take the next free numbers (change.u):
-- blocked by another writer meanwhile, it would keep them waiting forever.
for i = 1, #states, 2 do
  if cjson.decode(states[i + 1]).u then
    local raw = redis.call('HGET', ts, states[i])
    local blocked = raw and cjson.decode(raw).b
    if blocked and blocked ~= cjson.null then return conflict('blocked ' .. states[i]) end
  end
end
if #fired > 0 then
  hset(kw, fired)
  for i = 1, #fired, 2 do
    if fired[i] == 'sessionFinalized' then finalized = 1 end
  end
end
for i = 1, #firsts, 2 do redis.call('HSETNX', fst, firsts[i], firsts[i + 1]) end
for i = 1, #first, 2 do
  if redis.call('HEXISTS', mc, first[i]) == 1 then
    redis.call('HINCRBY', mc, first[i], -tonumber(first[i + 1]))
  end
end
-- Each state change is applied onto the stored state, so that two writers that changed
-- different instances of one task both land; a task counts as resolved when it has an
-- instance and none unresolved. Instances whose number does not matter (change.r: the
-- first of them) take the next free numbers: their task may have gained others meanwhile.
local changes, stored, renamed, shifts = {}, {}, {}, {}
for i = 1, #states, 2 do
  local task, change = states[i], cjson.decode(states[i + 1])
  local raw = redis.call('HGET', ts, task)
  local current = raw and cjson.decode(raw) or {n = 0, open = {}}
  changes[i], stored[i] = change, current
  if change.r and current.n ~= change.r then
    local shift = current.n - change.r
    for k = change.r, change.n - 1 do renamed[task .. '#' .. k] = task .. '#' .. (k + shift) end
    change.n = change.n + shift
    shifts[#shifts + 1] = task
    shifts[#shifts + 1] = shift
  end
end
local function named(name) return renamed[name] or name end
for i = 1, #instances, 2 do instances[i] = named(instances[i]) end
if #instances > 0 then hset(inst, instances) end
-- The fire key's record names the instances the firing scheduled, as they are stored.
if fire_record ~= '' then
  if next(renamed) ~= nil then
    local record, moved = cjson.decode(fire_record), false
    for i, name in ipairs(record.scheduled or {}) do
      if renamed[name] then
        record.scheduled[i], moved = renamed[name], true
      end
    end
    if moved then fire_record = cjson.encode(record) end
  end
  redis.call('HSET', fk, key, fire_record)
end
-- How many instances are scheduled or running (work a runner owes).
local function working(opened)
  local n = 0
  for _, status in pairs(opened) do
    if status == 'scheduled' or status == 'running' then n = n + 1 end
  end
  return n
end
local delta, work = 0, 0
for i = 1, #states, 2 do
  local task, change, current = states[i], changes[i], stored[i]
  local opened, logged = current.open or {}, current.logs or {}
  local before = current.n > 0 and next(opened) == nil
  local had = working(opened)
  if change.n then current.n = change.n end
  for name, status in pairs(change.o or {}) do opened[named(name)] = status end
  for _, name in ipairs(change.x or {}) do opened[named(name)] = nil end
  work = work + working(opened) - had
  for name, level in pairs(change.l or {}) do logged[named(name)] = level end
  for _, name in ipairs(change.y or {}) do logged[named(name)] = nil end
  local after = current.n > 0 and next(opened) == nil
  if change.c then delta = delta + (before and 1 or 0) - (after and 1 or 0) end
  local may = current.n == 0
  for _, status in pairs(opened) do
    if status == 'unstarted' then may = true end
  end
  local body = {n = current.n, open = opened}
  if next(logged) ~= nil then body.logs = logged end
  -- The vacant instance (change.e: false clears it) and why the task is blocked.
  if change.e ~= nil then current.v = change.e or nil end
  if current.v then body.v = current.v end
  if change.b ~= nil then current.b = change.b end
  if current.b then body.b = current.b end
  local text = cjson.encode(body)
  if may then text = '{"w":1,' .. string.sub(text, 2) end
  redis.call('HSET', ts, task, text)
  if change.v then redis.call('HINCRBY', tv, task, 1) end
end
-- The session's count of work, and its place in the set of sessions with work.
if work ~= 0 then
  if redis.call('HINCRBY', meta, 'work', work) > 0 then
    redis.call('SADD', active, tag())
  else
    redis.call('HDEL', meta, 'work')
    redis.call('SREM', active, tag())
  end
end
if configured == '1' then
  local configs, index, missing = group(2), group(2), group(2)
  redis.call('DEL', cfg, idx, mc)
  if #configs > 0 then hset(cfg, configs) end
  if #index > 0 then hset(idx, index) end
  if #missing > 0 then hset(mc, missing) end
  redis.call('HSET', meta, 'order', ARGV[pos])
  pos = pos + 1
  -- The counters, from what is stored now: another writer may have resolved a task since
  -- the configuration read the session.
  local counting = group(1)
  count, open, delta = #counting, 0, 0
  for _, task in ipairs(counting) do
    local raw = redis.call('HGET', ts, task)
    local current = raw and cjson.decode(raw)
    if not (current and current.n > 0 and next(current.open) == nil) then open = open + 1 end
  end
  redis.call('HSET', meta, 'counted', count, 'unresolved', open)
end
if new_cv ~= '' then redis.call('HSET', meta, 'cv', new_cv) end
if counted ~= '' then count = tonumber(counted) end
if unresolved ~= '' then open = tonumber(unresolved) end
if unresolved ~= '' then delta = 0 end
if counted ~= '' or unresolved ~= '' or delta ~= 0 then
  open = open + delta
  redis.call('HSET', meta, 'counted', count, 'unresolved', open)
end
if #metadata > 0 then hset(meta, metadata) end
applied(shifts)
if ttl ~= '' then expire() end
release()
return counters('ok', shifts)
