--[[
  Renews an instance lease. Compare-then-extend: an expired, missing or replaced lease is never revived.
  One call per instance per interval, whatever the number of sessions it holds.

  KEYS[1] instances     ZSET instance id -> lease deadline (ms)
  KEYS[2] instance-info HASH instance id -> JSON
  KEYS[3] owned         ZSET "<instanceId>:<sessionId>"
  KEYS[4] meta          HASH era, quarantineUntil

  ARGV[1] instanceId    instance id
  ARGV[2] incarnation   incarnation
  ARGV[3] leaseTtlMs    lease TTL (ms)
  ARGV[4] memory        the instance's browser memory, JSON {used, budget} (bytes), or '' when unchanged

  Reply: {1 OK, serverMs:number, ownedCount:number, era} ownedCount lets the instance detect a missed push or a lost session
         {-1 FENCED, reason}                 reason: 'missing' (never registered or Redis lost its data),
                                             'replaced' (another incarnation), 'expired'
]]
--@include common
local now = now_ms()
local info = get_json(KEYS[2], ARGV[1])
local deadline = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not info or not deadline then return { FENCED, 'missing' } end
if info.inc ~= ARGV[2] then return { FENCED, 'replaced' } end
if tonumber(deadline) <= now then return { FENCED, 'expired' } end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
if ARGV[4] ~= nil and ARGV[4] ~= '' then
  info.mem = cjson.decode(ARGV[4])
  set_json(KEYS[2], ARGV[1], info)
end
return { OK, now, load_of(KEYS[3], ARGV[1]), redis.call('HGET', KEYS[4], 'era') or '' }
