--[[
  Records a session's status (and optionally its desired state with its reason), written only by its current owner while the
  owner's lease is valid: a fenced instance can never overwrite the record.

  KEYS[1] instances     ZSET instance id -> lease deadline (ms)
  KEYS[2] instance-info HASH instance id -> JSON
  KEYS[3] sessions      HASH session id -> JSON record

  ARGV[1] instanceId    instance id
  ARGV[2] incarnation   incarnation
  ARGV[3] sessionId     session id
  ARGV[4] status        status ('STOPPED' | 'STARTING' | 'SCAN_QR_CODE' | 'WORKING' | 'FAILED')
  ARGV[5] desired       desired state ('running' | 'stopped', or '' to keep)
  ARGV[6] events        pub/sub channel
  ARGV[7] reason        reason, recorded with the desired state (e.g. 'restarts exhausted: start failed'); '' clears it.
          Ignored when ARGV[5] is ''

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
rec.status = ARGV[4]
if ARGV[5] ~= '' then
  rec.desired = ARGV[5]
  rec.reason = ARGV[7] ~= '' and ARGV[7] or nil
end
rec.updatedAt = now
set_json(KEYS[3], sid, rec)
publish(ARGV[6], sid, rec, me.url)
return { OK, rec.epoch }
