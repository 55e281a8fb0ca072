--[[
  Lists the sessions an instance incarnation owns with their epochs, to reconcile after a missed push. With the
  registry's era: a list from a new era (Redis failed over or lost data, see check_era) is older than what runs, and
  the caller re-asserts instead of reconciling.

  KEYS[1] instances     ZSET instance id -> lease deadline (ms)
  KEYS[2] instance-info HASH instance id -> JSON
  KEYS[3] owned         ZSET "<instanceId>:<sessionId>"
  KEYS[4] sessions      HASH session id -> JSON record
  KEYS[5] meta          HASH era, replid, quarantineUntil, quarantineMs

  ARGV[1] instanceId    instance id
  ARGV[2] incarnation   incarnation
  ARGV[3] limit         limit (count)

  Reply: {1 OK, era, ...pairs}   pairs: sessionId1, epoch1, sessionId2, epoch2, ...
         {-1 FENCED, reason}   the caller holds no valid lease, so the list proves nothing (the heartbeat recovers)
]]
--@include common
local now = now_ms()
check_era(KEYS[5], now)
local _, refused = my_lease(KEYS[1], KEYS[2], ARGV[1], ARGV[2], now)
if refused then return refused end
local out = { OK, redis.call('HGET', KEYS[5], 'era') or '' }
for _, member in ipairs(owned_of(KEYS[3], ARGV[1], tonumber(ARGV[3]))) do
  local sid = string.sub(member, #ARGV[1] + 2)
  local rec = get_json(KEYS[4], sid)
  if rec and rec.owner == ARGV[1] and rec.inc == ARGV[2] then
    table.insert(out, sid)
    table.insert(out, rec.epoch)
  end
end
return out
