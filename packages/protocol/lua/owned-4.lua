--[[
  Lists the sessions an instance incarnation owns with their epochs, to reconcile after a missed push.

  KEYS[1] instances     ZSET instance id -> lease deadline (ms)
  KEYS[2] instance-info HASH instance id -> JSON
  KEYS[3] owned         ZSET "<instanceId>:<sessionId>"
  KEYS[4] sessions      HASH session id -> JSON record

  ARGV[1] instanceId    instance id
  ARGV[2] incarnation   incarnation
  ARGV[3] limit         limit (count)

  Reply: {1 OK, ...pairs}   pairs: sessionId1, epoch1, sessionId2, epoch2, ...
         {-1 FENCED, reason}   the caller holds no valid lease, so the list proves nothing (the heartbeat recovers)
]]
--@include common
local _, refused = my_lease(KEYS[1], KEYS[2], ARGV[1], ARGV[2], now_ms())
if refused then return refused end
local out = { OK }
for _, member in ipairs(owned_of(KEYS[3], ARGV[1], tonumber(ARGV[3]))) do
  local sid = string.sub(member, #ARGV[1] + 2)
  local rec = get_json(KEYS[4], sid)
  if rec and rec.owner == ARGV[1] and rec.inc == ARGV[2] then
    table.insert(out, sid)
    table.insert(out, rec.epoch)
  end
end
return out
