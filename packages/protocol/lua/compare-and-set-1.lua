--[[
  Replaces a value only if it still equals what the caller read (idempotency records: take over an abandoned
  attempt, or store the outcome of one the caller still holds). A record that expired is not recreated.

  KEYS[1] record        the idempotency record

  ARGV[1] expected      expected current value
  ARGV[2] value         new value, or '' to delete
  ARGV[3] ttlMs         time to live of the new value (ms)

  Reply: {1 OK}
         {-8 NOT_OWNER, current} someone else changed it first
]]
--@include common
local current = redis.call('GET', KEYS[1])
if current ~= ARGV[1] then return { NOT_OWNER, current or '' } end
if ARGV[2] == '' then redis.call('DEL', KEYS[1])
else redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[3])) end
return { OK }
