--[[
  Stops a session that no live instance owns, from any instance or client: desired state 'stopped' with a reason,
  out of the placement queue, so a pending placement is cancelled and nothing adopts it. A session with a live
  owner is refused: its owner stops the engine first and then releases it (release 'stop').

  KEYS[1] instances     ZSET instance id -> lease deadline (ms)
  KEYS[2] instance-info HASH instance id -> JSON
  KEYS[3] owned         ZSET "<instanceId>:<sessionId>"
  KEYS[4] sessions      HASH session id -> JSON record
  KEYS[5] pending       ZSET session id -> due (ms)
  KEYS[6] meta          HASH adoptionDelayMs (the registry's adoption delay, never the caller's)

  ARGV[1] sessionId     session id
  ARGV[2] reason        reason (short text, e.g. 'stopped by request')
  ARGV[3] events        pub/sub channel

  Reply: {1 OK, epoch}
         {-3 OWNED_ELSEWHERE, owner, epoch, ownerUrl}
         {-4 OWNER_EXPIRING, retryAfterMs:number, owner}   the dead owner may still run it until the adoption delay passed
         {-10 NOT_FOUND}
]]
--@include common
local sid = ARGV[1]
local keys_ = { instances = KEYS[1], info = KEYS[2], owned = KEYS[3], sessions = KEYS[4], pending = KEYS[5] }
local now = now_ms()

local rec = get_json(KEYS[4], sid)
if not rec then return { NOT_FOUND } end
local state, retry_at = owner_state(KEYS[1], KEYS[2], KEYS[6], rec, now)
if state == 'live' then
  local info = get_json(KEYS[2], rec.owner)
  return { OWNED_ELSEWHERE, rec.owner, rec.epoch, info and info.url or '' }
end
if state == 'expiring' then return { OWNER_EXPIRING, retry_at - now, rec.owner } end

stop_record(keys_, sid, rec, ARGV[2], now, ARGV[3])
return { OK, rec.epoch }
