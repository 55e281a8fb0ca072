--[[
  Marks an instance as draining (or not): placement and adoption skip a draining instance.

  KEYS[1] instances     ZSET instance id -> lease deadline (ms)
  KEYS[2] instance-info HASH instance id -> JSON

  ARGV[1] instanceId    instance id
  ARGV[2] incarnation   incarnation
  ARGV[3] draining      '1' to drain, '0' to take sessions again

  Reply: {1 OK}
         {-1 FENCED, reason}
]]
--@include common
local now = now_ms()
local me, refused = my_lease(KEYS[1], KEYS[2], ARGV[1], ARGV[2], now)
if refused then return refused end
me.draining = ARGV[3] == '1'
set_json(KEYS[2], ARGV[1], me)
return { OK }
