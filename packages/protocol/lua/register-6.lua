--[[
  Registers an instance incarnation and grants its lease. Never revives an expired lease of the same
  incarnation, and refuses while another incarnation of the same id may still be running. Records the instance's
  timing facts in meta, where each keeps the largest value any registration of this era wrote: every adoption and
  placement decision reads them there.

  KEYS[1] instances     ZSET instance id -> lease deadline (Redis server ms)
  KEYS[2] instance-info HASH instance id -> JSON {id, inc, url, max, labels, draining, mode, registeredAt}
  KEYS[3] owned         ZSET (score 0) "<instanceId>:<sessionId>"
  KEYS[4] sessions      HASH session id -> JSON record
  KEYS[5] pending       ZSET session id -> placement due time (ms)
  KEYS[6] meta          HASH era, replid, quarantineUntil, quarantineMs, adoptionDelayMs, placementRetryMs, placementRetryMaxMs

  ARGV[1] instanceId    instance id
  ARGV[2] incarnation   incarnation (random, new per process start and per re-registration)
  ARGV[3] url           public URL
  ARGV[4] maxSessions   maxSessions (count)
  ARGV[5] labels        labels (JSON object)
  ARGV[6] leaseTtlMs    lease TTL (ms)
  ARGV[7] adoptionDelayMs this instance's adoption delay (ms): raises meta adoptionDelayMs
  ARGV[8] mode          mode ('managed' | 'observe')
  ARGV[9] quarantineMs  quarantine after data loss or a failover (ms); 0 disables: raises meta quarantineMs
  ARGV[10] events        pub/sub channel for ownership changes
  ARGV[11] placementRetryMs this instance's placement retry base delay (ms): raises meta placementRetryMs
  ARGV[12] placementRetryMaxMs this instance's placement retry max delay (ms): raises meta placementRetryMaxMs

  Reply: {1 OK, serverMs:number, era, quarantineUntil:number, sessionsQueued:number}
         {-1 FENCED, reason:'expired'}           same incarnation, lease expired: register a new incarnation
         {-2 DUPLICATE, retryAfterMs:number, incarnation}   another incarnation is alive or within meta adoptionDelayMs of its deadline
]]
--@include common
local id, inc = ARGV[1], ARGV[2]
local ttl, quarantine_ms = tonumber(ARGV[6]), tonumber(ARGV[9])
local keys_ = { instances = KEYS[1], info = KEYS[2], owned = KEYS[3], sessions = KEYS[4], pending = KEYS[5] }
local now = now_ms()

-- An empty meta hash means a new namespace or a Redis that lost its data: owners that survived it may still be
-- running sessions, so nobody but a previous owner may claim until their self-fence deadlines have passed.
-- A promoted replica or a Redis restarted from its files (a new replication id) starts a new era the same way.
if not redis.call('HGET', KEYS[6], 'era') then
  redis.call('HSET', KEYS[6], 'era', tostring(now) .. '-' .. inc, 'quarantineUntil', now + quarantine_ms)
end
check_era(KEYS[6], now)
local era = redis.call('HGET', KEYS[6], 'era')
raise_fact(KEYS[6], 'quarantineMs', quarantine_ms)
raise_fact(KEYS[6], 'adoptionDelayMs', tonumber(ARGV[7]))
raise_fact(KEYS[6], 'placementRetryMs', tonumber(ARGV[11]))
raise_fact(KEYS[6], 'placementRetryMaxMs', tonumber(ARGV[12]))
local adopt_delay = fleet_fact(KEYS[6], 'adoptionDelayMs')

local queued = 0
local existing = get_json(KEYS[2], id)
if existing then
  local deadline = tonumber(redis.call('ZSCORE', KEYS[1], id) or '0')
  if existing.inc == inc then
    if deadline <= now then return { FENCED, 'expired' } end
  else
    if deadline + adopt_delay > now then return { DUPLICATE, deadline + adopt_delay - now, existing.inc } end
    -- The old incarnation is gone for good: its sessions go back to placement, sticky to this instance.
    queued = orphan_all(keys_, id, existing, now, ARGV[10])
  end
end

set_json(KEYS[2], id, {
  id = id, inc = inc, url = ARGV[3], max = tonumber(ARGV[4]), labels = cjson.decode(ARGV[5]),
  draining = false, mode = ARGV[8], registeredAt = now
})
redis.call('ZADD', KEYS[1], now + ttl, id)
return { OK, now, era, tonumber(redis.call('HGET', KEYS[6], 'quarantineUntil') or '0'), queued }
