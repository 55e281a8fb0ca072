--[[
  Reaps instances whose lease expired more than the registry's adoption delay (meta adoptionDelayMs) ago and places their sessions (and any
  other session waiting for placement) on live instances. Any instance may run it; the work is bounded per
  call so Redis is never blocked for long.

  KEYS[1] instances     ZSET instance id -> lease deadline (ms)
  KEYS[2] instance-info HASH instance id -> JSON
  KEYS[3] owned         ZSET "<instanceId>:<sessionId>"
  KEYS[4] sessions      HASH session id -> JSON record
  KEYS[5] pending       ZSET session id -> due (ms)
  KEYS[6] meta          HASH era, replid, quarantineUntil, quarantineMs, adoptionDelayMs, placementRetryMs, placementRetryMaxMs

  ARGV[1] batch         batch: at most this many sessions orphaned and this many placed per call
  ARGV[2] events        pub/sub channel

  Timing from the registry, never the caller: meta adoptionDelayMs; a placement that found no capacity is retried
  after meta placementRetryMs, doubled per failed attempt, at most meta placementRetryMaxMs.

  An orphaned session's record keeps `lostAt`, its dead owner's lease deadline, until it is assigned again; the reply
  lists, for each orphan this call placed, the ms from that deadline to its new assignment (the adoption delay seen).

  Reply: {1 OK, placed:number, orphaned:number, deferred:number, instancesRemoved:number, ...adoptedAfterMs}
         {-7 QUARANTINE, retryAfterMs:number}      nothing is adopted while owners may still re-assert
]]
--@include common
local batch = tonumber(ARGV[1])
local now = now_ms()
check_era(KEYS[6], now)
local facts = fleet_facts(KEYS[6])
local adopt_delay = facts.adoptionDelayMs
local base, max_delay = facts.placementRetryMs, facts.placementRetryMaxMs
local keys_ = { instances = KEYS[1], info = KEYS[2], owned = KEYS[3], sessions = KEYS[4], pending = KEYS[5] }
if facts.quarantineUntil > now then return { QUARANTINE, facts.quarantineUntil - now } end

local orphaned, removed, budget = 0, 0, batch
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - adopt_delay, 'WITHSCORES', 'LIMIT', 0, 16)
for d = 1, #dead, 2 do
  local id, deadline = dead[d], tonumber(dead[d + 1])
  if budget <= 0 then break end
  local info = get_json(KEYS[2], id)
  local members = owned_of(KEYS[3], id, budget)
  for _, member in ipairs(members) do
    local sid = string.sub(member, #id + 2)
    local rec = get_json(KEYS[4], sid)
    redis.call('ZREM', KEYS[3], member)
    if rec and rec.owner == id then
      rec.lostAt = deadline
      orphan(keys_, sid, rec, info, now, ARGV[2])
      orphaned = orphaned + 1
    end
  end
  budget = budget - #members
  if load_of(KEYS[3], id) == 0 then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    removed = removed + 1
  end
end

local placed, deferred, adopted = 0, 0, {}
for _, sid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, batch)) do
  local rec = get_json(KEYS[4], sid)
  local state = owner_state(KEYS[1], KEYS[2], KEYS[6], rec, now, adopt_delay)
  if rec == nil or rec.desired ~= 'running' or state ~= 'free' then
    redis.call('ZREM', KEYS[5], sid)
  else
    local id, info = choose_instance(KEYS[1], KEYS[2], KEYS[3], rec, '', now)
    if id then
      if rec.lostAt then table.insert(adopted, now - rec.lostAt) end
      assign(keys_, sid, rec, id, info, now, ARGV[2])
      placed = placed + 1
    else
      rec.attempts = (rec.attempts or 0) + 1
      set_json(KEYS[4], sid, rec)
      redis.call('ZADD', KEYS[5], now + math.min(max_delay, base * 2 ^ math.min(rec.attempts - 1, 20)), sid)
      deferred = deferred + 1
    end
  end
end
return { OK, placed, orphaned, deferred, removed, unpack(adopted) }
