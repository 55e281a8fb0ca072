--[[
  Whether an instance incarnation holds a valid lease right now.

  KEYS[1] instances     ZSET instance id -> lease deadline (ms)
  KEYS[2] instance-info HASH instance id -> JSON

  ARGV[1] instanceId    instance id
  ARGV[2] incarnation   incarnation

  Reply: {1 OK, live:'1'|'0'}
]]
--@include common
local info = live_instance(KEYS[1], KEYS[2], ARGV[1], now_ms())
return { OK, (info and info.inc == ARGV[2]) and '1' or '0' }
