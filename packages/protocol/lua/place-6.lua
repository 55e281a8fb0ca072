--[[
  Chooses an owner for a session and assigns it atomically: the least-loaded live, non-draining, managed
  instance with free capacity whose labels satisfy the session's, sticky to a qualifying previous owner.
  Records the desired state 'running' (clearing the reason it stopped) even when nobody can take it now; the sweep
  places it later. A session whose owner is live is left as it is ('existing').

  KEYS[1] instances     ZSET instance id -> lease deadline (ms)
  KEYS[2] instance-info HASH instance id -> JSON
  KEYS[3] owned         ZSET "<instanceId>:<sessionId>"
  KEYS[4] sessions      HASH session id -> JSON record
  KEYS[5] pending       ZSET session id -> due (ms)
  KEYS[6] meta          HASH era, replid, quarantineUntil, quarantineMs, adoptionDelayMs, placementRetryMs, placementRetryMaxMs

  ARGV[1] sessionId     session id
  ARGV[2] labels        required labels (JSON object, or '' to keep the recorded ones)
  ARGV[3] exclude       instance id to exclude ('' for none)
  ARGV[4] events        pub/sub channel
  ARGV[5] metadata      session metadata (JSON object text, stored as text; '' to keep the recorded one)

  The adoption delay and the retry delay when nothing has capacity are the registry's (meta adoptionDelayMs,
  placementRetryMs), never the caller's.

  Reply: {1 OK, owner, epoch, ownerUrl, kind:'new'|'existing'}
         {2 PENDING, retryAfterMs:number}          recorded; no instance can take it now (retryAfterMs: meta placementRetryMs)
         {-4 OWNER_EXPIRING, retryAfterMs:number, owner}   the owner's lease expired less than meta adoptionDelayMs ago
         {-7 QUARANTINE, retryAfterMs:number}
]]
--@include common
local sid = ARGV[1]
local keys_ = { instances = KEYS[1], info = KEYS[2], owned = KEYS[3], sessions = KEYS[4], pending = KEYS[5] }
local now = now_ms()
check_era(KEYS[6], now)

local rec = get_json(KEYS[4], sid)
local state, retry_at = owner_state(KEYS[1], KEYS[2], KEYS[6], rec, now)
if state == 'live' then
  local info = get_json(KEYS[2], rec.owner)
  return { OK, rec.owner, rec.epoch, info.url, 'existing' }
end
if state == 'expiring' then return { OWNER_EXPIRING, retry_at - now, rec.owner } end
local q = in_quarantine(KEYS[6], now)
if q then return { QUARANTINE, q - now } end

rec = rec or { epoch = '0', owner = '', inc = '' }
if ARGV[2] ~= '' then rec.labels = cjson.decode(ARGV[2]) end
if ARGV[5] ~= '' then rec.metadata = ARGV[5] end
local id, info = choose_instance(KEYS[1], KEYS[2], KEYS[3], rec, ARGV[3], now)
if not id then
  local had_owner = rec.owner ~= nil and rec.owner ~= ''
  want_running(rec)
  unassign(keys_, sid, rec, now)
  set_json(KEYS[4], sid, rec)
  if had_owner then publish(ARGV[4], sid, rec, '') end
  local retry = fleet_fact(KEYS[6], 'placementRetryMs')
  redis.call('ZADD', KEYS[5], now + retry, sid)
  return { PENDING, retry }
end
assign(keys_, sid, rec, id, info, now, ARGV[4])
return { OK, id, rec.epoch, info.url, 'new' }
