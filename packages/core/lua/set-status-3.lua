--[[
  Records a session's status (and optionally its desired state), written only by its current owner while the
  owner's lease is valid: a fenced instance can never overwrite the record.

  KEYS[1] instances     ZSET instance id -> lease deadline (ms)
  KEYS[2] instance-info HASH instance id -> JSON
  KEYS[3] sessions      HASH session id -> JSON record

  ARGV[1] instance id
  ARGV[2] incarnation
  ARGV[3] session id
  ARGV[4] status ('STOPPED' | 'STARTING' | 'SCAN_QR_CODE' | 'WORKING' | 'FAILED')
  ARGV[5] desired state ('running' | 'stopped', or '' to keep)
  ARGV[6] pub/sub channel

  Reply: {1 OK, epoch}
         {-1 FENCED, reason}
         {-8 NOT_OWNER, owner, epoch}
         {-10 NOT_FOUND}
]]
--@include common
local id, inc, sid = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
local me = live_instance(KEYS[1], KEYS[2], id, now)
if not me or me.inc ~= inc then return { FENCED, me and 'replaced' or 'expired' } end
local rec = get_json(KEYS[3], sid)
if not rec then return { NOT_FOUND } end
if rec.owner ~= id or rec.inc ~= inc then return { NOT_OWNER, rec.owner or '', rec.epoch or '0' } end
rec.status = ARGV[4]
if ARGV[5] ~= '' then rec.desired = ARGV[5] end
rec.updatedAt = now
set_json(KEYS[3], sid, rec)
publish(ARGV[6], sid, rec, me.url)
return { OK, rec.epoch }
