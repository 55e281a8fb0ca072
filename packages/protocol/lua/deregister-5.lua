--[[
  Removes an instance after it handed its sessions off (graceful close). Sessions it still holds go back to
  placement at once instead of waiting for the lease to expire.

  KEYS[1] instances     ZSET instance id -> lease deadline (ms)
  KEYS[2] instance-info HASH instance id -> JSON
  KEYS[3] owned         ZSET "<instanceId>:<sessionId>"
  KEYS[4] sessions      HASH session id -> JSON record
  KEYS[5] pending       ZSET session id -> due (ms)

  ARGV[1] instanceId    instance id
  ARGV[2] incarnation   incarnation
  ARGV[3] events        pub/sub channel

  Reply: {1 OK, sessionsQueued}
         {-1 FENCED, reason}
]]
--@include common
local id, inc = ARGV[1], ARGV[2]
local keys_ = { instances = KEYS[1], info = KEYS[2], owned = KEYS[3], sessions = KEYS[4], pending = KEYS[5] }
local now = now_ms()
local info = get_json(KEYS[2], id)
if not info or info.inc ~= inc then return { FENCED, 'replaced' } end
local queued = orphan_all(keys_, id, info, now, ARGV[3])
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', KEYS[2], id)
return { OK, queued }
