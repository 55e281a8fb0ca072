-- Shared helpers for every wafleet script. Included by `--@include common`.
-- Reply codes: the one definition. scripts/build-lua.mjs generates the TypeScript and PHP constants from these lines.
local OK = 1                 -- done
local PENDING = 2            -- accepted, but waiting for capacity (placed later by the sweep)
local FENCED = -1            -- the caller's instance lease is missing, expired or replaced
local DUPLICATE = -2         -- another live incarnation holds this instance id
local OWNED_ELSEWHERE = -3   -- a live instance owns the session
local OWNER_EXPIRING = -4    -- the owner's lease is dead but the adoption delay has not passed
local CAPACITY = -5          -- the caller's instance is at maxSessions
local QUARANTINE = -7        -- Redis lost its data recently: only previous owners may claim
local NOT_OWNER = -8         -- the caller does not own the session
local DRAINING = -9          -- the caller's instance is draining
local NOT_FOUND = -10        -- unknown session
local UPLOAD_EXPIRED = -11   -- the upload is not pending (collected as garbage after the upload timeout, or dropped)
local BREAKER_OPEN = -12     -- most starts across the fleet fail the same way: restarts wait (a few probe)

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Epochs are about server ms * 1024 (~1.8e15, below 2^53 until the 23rd century), but cjson would print
-- them with 14 significant digits: keep them as decimal strings.
local function fmt(n)
  return string.format('%.0f', n)
end

local function next_epoch(prev, now)
  local p = tonumber(prev or '0') or 0
  local floor = now * 1024
  if p + 1 > floor then return fmt(p + 1) end
  return fmt(floor)
end

local function get_json(key, field)
  local raw = redis.call('HGET', key, field)
  if not raw then return nil end
  return cjson.decode(raw)
end

local function set_json(key, field, value)
  redis.call('HSET', key, field, cjson.encode(value))
end

-- Members of the owned index are "<instanceId>:<sessionId>"; ids never contain ':' and ';' follows ':' in ASCII.
local function load_of(owned_key, instance_id)
  return redis.call('ZLEXCOUNT', owned_key, '[' .. instance_id .. ':', '(' .. instance_id .. ';')
end

local function owned_of(owned_key, instance_id, limit)
  return redis.call('ZRANGEBYLEX', owned_key, '[' .. instance_id .. ':', '(' .. instance_id .. ';', 'LIMIT', 0, limit)
end

-- An instance holds a valid lease when its deadline is in the future.
local function live_instance(instances_key, info_key, id, now)
  if id == nil or id == '' then return nil end
  local deadline = redis.call('ZSCORE', instances_key, id)
  if not deadline or tonumber(deadline) <= now then return nil end
  return get_json(info_key, id), tonumber(deadline)
end

-- Fleet-wide timing facts live in the meta hash, written by every registration and never taken from a caller, so
-- whoever triggers an adoption or placement cannot shorten a margin. Each field keeps the largest value any
-- registration of this era wrote: an instance with a smaller adoption delay cannot cut the pause budget of one
-- configured with more. Absent only while no instance of this version has registered: the default profile's values.
local FACT_DEFAULTS = { adoptionDelayMs = 1000, placementRetryMs = 1000, placementRetryMaxMs = 30000 }

local function fleet_fact(meta_key, name)
  return tonumber(redis.call('HGET', meta_key, name) or '') or FACT_DEFAULTS[name]
end

-- Every fact plus quarantineUntil in one read (the sweep runs every second on every instance).
local function fleet_facts(meta_key)
  local v = redis.call('HMGET', meta_key, 'quarantineUntil', 'adoptionDelayMs', 'placementRetryMs', 'placementRetryMaxMs')
  local facts = { quarantineUntil = tonumber(v[1] or '') or 0 }
  facts.adoptionDelayMs = tonumber(v[2] or '') or FACT_DEFAULTS.adoptionDelayMs
  facts.placementRetryMs = tonumber(v[3] or '') or FACT_DEFAULTS.placementRetryMs
  facts.placementRetryMaxMs = tonumber(v[4] or '') or FACT_DEFAULTS.placementRetryMaxMs
  return facts
end

local function raise_fact(meta_key, name, value)
  local current = tonumber(redis.call('HGET', meta_key, name) or '')
  if current == nil or value > current then redis.call('HSET', meta_key, name, value) end
end

-- 'live': the recorded owner incarnation holds its lease; 'expiring': dead, but adoption must wait until
-- retry_at; 'free': nobody owns it, or the owner's lease is dead for longer than the fleet's adoption delay
-- (`adopt_delay` when the caller has read it already, else read from meta).
local function owner_state(instances_key, info_key, meta_key, rec, now, adopt_delay)
  if rec == nil or rec.owner == nil or rec.owner == '' then return 'free', 0 end
  local deadline = redis.call('ZSCORE', instances_key, rec.owner)
  local info = get_json(info_key, rec.owner)
  if not deadline or not info then return 'free', 0 end
  -- A new incarnation registers only after the old one's deadline + adoption delay, so a mismatch means free.
  if info.inc ~= rec.inc then return 'free', 0 end
  deadline = tonumber(deadline)
  adopt_delay = adopt_delay or fleet_fact(meta_key, 'adoptionDelayMs')
  if deadline > now then return 'live', deadline + adopt_delay end
  if deadline + adopt_delay > now then return 'expiring', deadline + adopt_delay end
  return 'free', 0
end

-- The replication id of this Redis and its number of connected replicas (INFO replication); nil where INFO is not
-- allowed (a managed Redis that renamed it): then only an empty Redis starts a new era.
local function replication()
  local ok, info = pcall(redis.call, 'INFO', 'replication')
  if not ok or type(info) ~= 'string' then return nil, 0 end
  return string.match(info, 'master_replid:(%w+)'), tonumber(string.match(info, 'connected_slaves:(%d+)') or '0')
end

-- A replica promoted by a failover, or a Redis restarted from its files, may lack the newest grants, renewals and
-- epochs: replication and AOF are asynchronous. Both come with a new replication id, which starts a new era with the
-- same quarantine as a Redis that lost everything (meta quarantineMs, the largest any registration asked for): only
-- previous owners may claim until their self-fence deadlines have passed. Every script that grants or renews calls it
-- first, so nothing is granted on a new master before the quarantine is in place. An empty meta hash is left to the
-- register script. Returns the number of connected replicas.
local function check_era(meta_key, now)
  local replid, replicas = replication()
  if not replid then return 0 end
  local v = redis.call('HMGET', meta_key, 'era', 'replid', 'quarantineMs', 'quarantineUntil')
  if v[1] and v[2] ~= replid then
    if v[2] then
      local until_ = math.max(tonumber(v[4] or '') or 0, now + (tonumber(v[3] or '') or 0))
      redis.call('HSET', meta_key, 'era', tostring(now) .. '-' .. string.sub(replid, 1, 8), 'quarantineUntil', until_, 'replid', replid)
    else
      redis.call('HSET', meta_key, 'replid', replid)
    end
  end
  return replicas
end

local function in_quarantine(meta_key, now)
  local q = redis.call('HGET', meta_key, 'quarantineUntil')
  if q and tonumber(q) > now then return tonumber(q) end
  return nil
end

local function labels_match(have, want)
  if want == nil then return true end
  for k, v in pairs(want) do
    if have == nil or have[k] ~= v then return false end
  end
  return true
end

local function publish(channel, sid, rec, url)
  if channel == '' then return end
  redis.call('PUBLISH', channel, cjson.encode({
    s = sid, o = rec.owner, i = rec.inc, e = rec.epoch, st = rec.status, d = rec.desired, u = url or ''
  }))
end

-- The least-loaded live, non-draining, managed instance with free capacity whose labels satisfy the session's;
-- the session's previous owner wins when it qualifies (sticky placement keeps browser caches warm).
-- An instance whose browsers use their whole memory budget (reported with the heartbeat) takes no more sessions.
local function memory_full(info)
  return info.mem ~= nil and info.mem.budget ~= nil and info.mem.used >= info.mem.budget
end

local function choose_instance(instances_key, info_key, owned_key, rec, exclude, now)
  local ids = redis.call('ZRANGEBYSCORE', instances_key, '(' .. now, '+inf')
  local best, best_info, best_ratio, best_load = nil, nil, nil, nil
  for _, id in ipairs(ids) do
    if id ~= exclude then
      local info = get_json(info_key, id)
      if info and not info.draining and info.mode == 'managed' and labels_match(info.labels, rec.labels) then
        local load = load_of(owned_key, id)
        if load < info.max and not memory_full(info) then
          if id == rec.prev or id == rec.owner then return id, info end
          -- The fuller of the two: sessions against maxSessions, browser memory against its budget.
          local ratio = load / info.max
          if info.mem ~= nil and info.mem.budget ~= nil and info.mem.used / info.mem.budget > ratio then
            ratio = info.mem.used / info.mem.budget
          end
          if best == nil or ratio < best_ratio or (ratio == best_ratio and load < best_load)
             or (ratio == best_ratio and load == best_load and id < best) then
            best, best_info, best_ratio, best_load = id, info, ratio, load
          end
        end
      end
    end
  end
  return best, best_info
end

-- The session should run: whatever stopped it (a reason) no longer applies.
local function want_running(rec)
  rec.desired = 'running'
  rec.reason = nil
end

-- Makes `id` the owner of `sid`: a new epoch, the owned index, no pending entry, and a push to every subscriber.
local function assign(keys_, sid, rec, id, info, now, channel)
  if rec.owner ~= nil and rec.owner ~= '' then
    redis.call('ZREM', keys_.owned, rec.owner .. ':' .. sid)
    rec.prev = rec.owner
  end
  rec.owner = id
  rec.inc = info.inc
  rec.epoch = next_epoch(rec.epoch, now)
  rec.status = 'STARTING'
  want_running(rec)
  rec.attempts = 0
  rec.since = now
  rec.updatedAt = now
  rec.lostAt = nil
  set_json(keys_.sessions, sid, rec)
  redis.call('ZADD', keys_.owned, 0, id .. ':' .. sid)
  redis.call('ZREM', keys_.pending, sid)
  publish(channel, sid, rec, info.url)
  return rec
end

-- Whether a session whose owner went away should be placed elsewhere automatically: every session that should
-- run, whatever its last status (WORKING, STARTING, SCAN_QR_CODE, FAILED with a restart pending). Only a session
-- whose desired state is 'stopped' (gave up, logged out, stopped by request) waits for a human, with its reason.
-- An observe-mode owner's sessions are left alone: wafleet only records what that fleet does.
local function adoptable(rec, owner_info)
  return rec.desired == 'running' and (owner_info == nil or owner_info.mode == 'managed')
end

-- Removes the owner. A session that should run is STOPPED until its next owner starts it; one that waits for a
-- human keeps its last status (e.g. FAILED after giving up), so the reason stays visible next to it.
local function unassign(keys_, sid, rec, now)
  if rec.owner ~= nil and rec.owner ~= '' then
    redis.call('ZREM', keys_.owned, rec.owner .. ':' .. sid)
    rec.prev = rec.owner
  end
  rec.owner = ''
  rec.inc = ''
  if rec.desired == 'running' then rec.status = 'STOPPED' end
  rec.updatedAt = now
end

-- Stops a session for good (a stop request, a release): no owner, desired stopped with `reason`, not queued, announced.
local function stop_record(keys_, sid, rec, reason, now, channel)
  unassign(keys_, sid, rec, now)
  rec.desired = 'stopped'
  rec.status = 'STOPPED'
  rec.reason = reason
  set_json(keys_.sessions, sid, rec)
  redis.call('ZREM', keys_.pending, sid)
  publish(channel, sid, rec, '')
end

-- Takes a session away from a departed owner: queued for placement when adoptable, then announced.
local function orphan(keys_, sid, rec, owner_info, now, channel)
  local queue = adoptable(rec, owner_info)
  unassign(keys_, sid, rec, now)
  if queue then redis.call('ZADD', keys_.pending, now, sid) end
  set_json(keys_.sessions, sid, rec)
  publish(channel, sid, rec, '')
  return queue
end

-- Orphans every session `id` holds (no bound: called for one instance's sessions, at most its maxSessions).
local function orphan_all(keys_, id, info, now, channel)
  local queued = 0
  for _, member in ipairs(owned_of(keys_.owned, id, 100000)) do
    local sid = string.sub(member, #id + 2)
    local rec = get_json(keys_.sessions, sid)
    redis.call('ZREM', keys_.owned, member)
    if rec and rec.owner == id and orphan(keys_, sid, rec, info, now, channel) then queued = queued + 1 end
  end
  return queued
end

-- The caller's instance record when its lease is valid, else the FENCED reply.
local function my_lease(instances_key, info_key, id, inc, now)
  local me = live_instance(instances_key, info_key, id, now)
  if not me or me.inc ~= inc then return nil, { FENCED, me and 'replaced' or 'expired' } end
  return me, nil
end

-- The record of a session the caller owns under a valid lease, else the reply refusing the call.
local function my_session(instances_key, info_key, sessions_key, id, inc, sid, now)
  local me, refused = my_lease(instances_key, info_key, id, inc, now)
  if refused then return nil, nil, refused end
  local rec = get_json(sessions_key, sid)
  if not rec then return nil, nil, { NOT_FOUND } end
  if rec.owner ~= id or rec.inc ~= inc then return nil, nil, { NOT_OWNER, rec.owner or '', rec.epoch or '0' } end
  return me, rec, nil
end

-- my_session, and still at the epoch the caller wrote under (the fencing token of session data).
local function my_session_at(instances_key, info_key, sessions_key, id, inc, sid, epoch, now)
  local me, rec, refused = my_session(instances_key, info_key, sessions_key, id, inc, sid, now)
  if refused then return nil, nil, refused end
  if rec.epoch ~= epoch then return nil, nil, { NOT_OWNER, rec.owner, rec.epoch } end
  return me, rec, nil
end

