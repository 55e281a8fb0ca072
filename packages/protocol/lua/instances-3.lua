--[[
  Lists registered instances with their load, in one round trip.

  KEYS[1] instances     ZSET instance id -> lease deadline (ms)
  KEYS[2] instance-info HASH instance id -> JSON
  KEYS[3] owned         ZSET "<instanceId>:<sessionId>"

  Reply: {1 OK, serverMs:number, instances}   instances: JSON array of {id, url, max, load, labels, draining, mode, deadline, live, mem?}
]]
--@include common
local now = now_ms()
local out = {}
local ids = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #ids, 2 do
  local info = get_json(KEYS[2], ids[i])
  if info then
    info.inc = nil
    info.load = load_of(KEYS[3], ids[i])
    info.deadline = tonumber(ids[i + 1])
    info.live = info.deadline > now
    table.insert(out, info)
  end
end
return { OK, now, cjson.encode(out) }
