--[[
  Replaces a session's metadata, written only by its current owner while the owner's lease is valid (like
  set-status). Stored as the JSON text the caller validated, never decoded here, so it round-trips exactly.

  KEYS[1] instances     ZSET instance id -> lease deadline (ms)
  KEYS[2] instance-info HASH instance id -> JSON
  KEYS[3] sessions      HASH session id -> JSON record

  ARGV[1] instanceId    instance id
  ARGV[2] incarnation   incarnation
  ARGV[3] sessionId     session id
  ARGV[4] metadata      metadata (JSON object text)
  ARGV[5] events        pub/sub channel

  Reply: {1 OK, epoch}
         {-1 FENCED, reason}
         {-8 NOT_OWNER, owner, epoch}
         {-10 NOT_FOUND}
]]
--@include common
local id, inc, sid = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
local me, rec, refused = my_session(KEYS[1], KEYS[2], KEYS[3], id, inc, sid, now)
if refused then return refused end
rec.metadata = ARGV[4]
rec.updatedAt = now
set_json(KEYS[3], sid, rec)
-- Subscribers drop what they cached of the session (the push carries no metadata).
publish(ARGV[5], sid, rec, me.url)
return { OK, rec.epoch }
