--[[
  Gives up a session held by the calling instance. 'stop' records desired state stopped; 'handoff' keeps it
  running and assigns it to another instance at once (or queues it for placement), except a session whose desired
  state is already stopped, which is only released. Call only after the
  engine has stopped and flushed its auth state.

  KEYS[1] instances     ZSET instance id -> lease deadline (ms)
  KEYS[2] instance-info HASH instance id -> JSON
  KEYS[3] owned         ZSET "<instanceId>:<sessionId>"
  KEYS[4] sessions      HASH session id -> JSON record
  KEYS[5] pending       ZSET session id -> due (ms)
  KEYS[6] meta          HASH placementRetryMs (the retry delay when nothing has capacity); era, replid (see check_era)

  ARGV[1] instanceId    instance id
  ARGV[2] incarnation   incarnation
  ARGV[3] sessionId     session id
  ARGV[4] mode          mode ('stop' | 'handoff')
  ARGV[5] events        pub/sub channel
  ARGV[6] reason        reason recorded with 'stop' (short text, e.g. 'stopped by request'); ignored by 'handoff'

  Reply: {1 OK, owner, epoch, ownerUrl}   the new owner ('' after stop)
         {2 PENDING, retryAfterMs:number}          handed off, but no instance can take it now (retryAfterMs: meta placementRetryMs)
         {-1 FENCED, reason}
         {-8 NOT_OWNER, owner, epoch}
         {-10 NOT_FOUND}
]]
--@include common
local id, inc, sid = ARGV[1], ARGV[2], ARGV[3]
local keys_ = { instances = KEYS[1], info = KEYS[2], owned = KEYS[3], sessions = KEYS[4], pending = KEYS[5] }
local now = now_ms()
check_era(KEYS[6], now)

local _, rec, refused = my_session(KEYS[1], KEYS[2], KEYS[4], id, inc, sid, now)
if refused then return refused end

if ARGV[4] == 'stop' then
  stop_record(keys_, sid, rec, ARGV[6], now, ARGV[5])
  return { OK, '', rec.epoch, '' }
end
unassign(keys_, sid, rec, now)

-- A session that waits for a human (desired stopped: gave up, logged out) is not started elsewhere by a handoff:
-- it leaves this instance ownerless, with its status and reason.
if rec.desired ~= 'running' then
  set_json(KEYS[4], sid, rec)
  publish(ARGV[5], sid, rec, '')
  return { OK, '', rec.epoch, '' }
end
local target, info = choose_instance(KEYS[1], KEYS[2], KEYS[3], rec, id, now)
if not target then
  rec.status = 'STOPPED'
  set_json(KEYS[4], sid, rec)
  local retry = fleet_fact(KEYS[6], 'placementRetryMs')
  redis.call('ZADD', KEYS[5], now + retry, sid)
  publish(ARGV[5], sid, rec, '')
  return { PENDING, retry }
end
assign(keys_, sid, rec, target, info, now, ARGV[5])
return { OK, target, rec.epoch, info.url }
