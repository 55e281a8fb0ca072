--[[
  Announces an upload of a session's data under a fresh upload id, before any byte is written: only the session's
  owner, under a valid lease and at the epoch it writes under, may begin one. A begun upload that is never committed
  is garbage once older than the upload timeout (data-commit collects it).

  KEYS[1] instances     ZSET instance id -> lease deadline (ms)
  KEYS[2] instance-info HASH instance id -> JSON
  KEYS[3] sessions      HASH session id -> JSON record
  KEYS[4] data-uploads  ZSET <sessionId>/<uploadId> -> upload start (ms)

  ARGV[1] instanceId    instance id
  ARGV[2] incarnation   incarnation
  ARGV[3] sessionId     session id
  ARGV[4] epoch         the epoch the caller owns the session under (decimal string)
  ARGV[5] uploadId      fresh upload id (never reused)

  Reply: {1 OK, startedAt:number}
         {-1 FENCED, reason}
         {-8 NOT_OWNER, owner, epoch}
         {-10 NOT_FOUND}
]]
--@include common
local id, inc, sid, epoch, upload = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now = now_ms()
local _, _, refused = my_session_at(KEYS[1], KEYS[2], KEYS[3], id, inc, sid, epoch, now)
if refused then return refused end
redis.call('ZADD', KEYS[4], now, sid .. '/' .. upload)
return { OK, now }
