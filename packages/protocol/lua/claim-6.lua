--[[
  Takes ownership of a session for the calling instance when nobody live owns it and the caller has capacity.

  KEYS[1] instances     ZSET instance id -> lease deadline (ms)
  KEYS[2] instance-info HASH instance id -> JSON
  KEYS[3] owned         ZSET "<instanceId>:<sessionId>"
  KEYS[4] sessions      HASH session id -> JSON record
  KEYS[5] pending       ZSET session id -> due (ms)
  KEYS[6] meta          HASH era, replid, quarantineUntil, quarantineMs, adoptionDelayMs, placementRetryMs, placementRetryMaxMs

  ARGV[1] instanceId    instance id
  ARGV[2] incarnation   incarnation
  ARGV[3] sessionId     session id
  ARGV[4] reassert      reassert: '1' when the caller runs the session and Redis lost data or failed over: in quarantine it
                        is granted whoever the record names
  ARGV[5] force         force: '1' in observe mode (record whatever happens; no caps, no refusal)
  ARGV[6] events        pub/sub channel
  ARGV[7] labels        session labels (JSON object, or '' to keep the recorded ones)
  ARGV[8] metadata      session metadata (JSON object text, stored as text; '' to keep the recorded one)

  The adoption delay is the registry's (meta adoptionDelayMs), never the caller's.

  Reply: {1 OK, epoch, kind:'new'|'held', previousOwner}
         {-1 FENCED, reason}
         {-3 OWNED_ELSEWHERE, owner, epoch, ownerUrl}
         {-4 OWNER_EXPIRING, retryAfterMs:number, owner}   the owner's lease expired less than meta adoptionDelayMs ago
         {-5 CAPACITY, load:number, maxSessions:number, resource:'sessions'|'memory'}   memory: its browsers use the memory budget
         {-7 QUARANTINE, retryAfterMs:number}
         {-9 DRAINING}
]]
--@include common
local id, inc, sid = ARGV[1], ARGV[2], ARGV[3]
local reassert, force = ARGV[4] == '1', ARGV[5] == '1'
local keys_ = { instances = KEYS[1], info = KEYS[2], owned = KEYS[3], sessions = KEYS[4], pending = KEYS[5] }
local now = now_ms()
check_era(KEYS[6], now)

local me, refused = my_lease(KEYS[1], KEYS[2], id, inc, now)
if refused then return refused end
local rec = get_json(KEYS[4], sid)
if rec and rec.owner == id and rec.inc == inc then
  -- Already ours: only what the caller gave changes.
  if ARGV[7] ~= '' or ARGV[8] ~= '' then
    if ARGV[7] ~= '' then rec.labels = cjson.decode(ARGV[7]) end
    if ARGV[8] ~= '' then rec.metadata = ARGV[8] end
    set_json(KEYS[4], sid, rec)
  end
  return { OK, rec.epoch, 'held', id }
end
local state, retry_at = owner_state(KEYS[1], KEYS[2], KEYS[6], rec, now)
local q = in_quarantine(KEYS[6], now)
if me.draining and not force and not (reassert and q) then return { DRAINING } end
-- In quarantine a re-assertion wins over the record. The registry may have lost the newest writes, and the caller
-- runs the session now under a valid lease (before the loss at most one instance did), while a record naming another
-- owner can be older than a handoff or an adoption Redis lost.
if not force and not (reassert and q) then
  if state == 'live' then
    local owner_info = get_json(KEYS[2], rec.owner)
    return { OWNED_ELSEWHERE, rec.owner, rec.epoch, owner_info and owner_info.url or '' }
  end
  if state == 'expiring' then return { OWNER_EXPIRING, retry_at - now, rec.owner } end
  if q then return { QUARANTINE, q - now } end
  local load = load_of(KEYS[3], id)
  if load >= me.max then return { CAPACITY, load, me.max, 'sessions' } end
  if memory_full(me) then return { CAPACITY, load, me.max, 'memory' } end
end

local prev = rec and rec.owner or ''
rec = rec or { epoch = '0' }
if ARGV[7] ~= '' then rec.labels = cjson.decode(ARGV[7]) end
if ARGV[8] ~= '' then rec.metadata = ARGV[8] end
assign(keys_, sid, rec, id, me, now, ARGV[6])
return { OK, rec.epoch, 'new', prev }
