--[[
  Renews an instance lease. Compare-then-extend: an expired, missing or replaced lease is never revived.
  One call per instance per interval, whatever the number of sessions it holds. It also hands out the fleet's sweep:
  the first renewal after one is due (meta sweptAt + the caller's sweep interval) claims it, and that instance runs
  the sweep script, so the fleet sweeps once per interval, not once per instance. There is no leader: when the
  instance that swept dies, the next renewal of any other one claims the next sweep.

  KEYS[1] instances     ZSET instance id -> lease deadline (ms)
  KEYS[2] instance-info HASH instance id -> JSON
  KEYS[3] owned         ZSET "<instanceId>:<sessionId>"
  KEYS[4] meta          HASH era, replid, quarantineUntil, quarantineMs, sweptAt, sweptBy

  ARGV[1] instanceId    instance id
  ARGV[2] incarnation   incarnation
  ARGV[3] leaseTtlMs    lease TTL (ms)
  ARGV[4] memory        the instance's browser memory, JSON {used, budget} (bytes), or '' when unchanged
  ARGV[5] sweepIntervalMs the caller's sweep interval (ms); 0: it does not sweep (observe mode, closing)

  Reply: {1 OK, serverMs:number, ownedCount:number, era, quarantineLeftMs:number, replicas:number, sweep:number}
         {-1 FENCED, reason, era}            reason: 'missing' (never registered or Redis lost its data),
                                             'replaced' (another incarnation), 'expired'

  ownedCount lets the instance detect a missed push or a lost session; a new era (Redis lost data or failed over,
  see check_era) tells it to re-assert its sessions, quarantineLeftMs how long the quarantine still lasts (0: none);
  replicas is the number of connected replicas (whether a grant can be waited for with WAIT); sweep 1: the caller
  claimed this interval's sweep and runs it now.
]]
--@include common
local now = now_ms()
local replicas = check_era(KEYS[4], now)
local era = redis.call('HGET', KEYS[4], 'era') or ''
local info = get_json(KEYS[2], ARGV[1])
local deadline = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not info or not deadline then return { FENCED, 'missing', era } end
if info.inc ~= ARGV[2] then return { FENCED, 'replaced', era } end
if tonumber(deadline) <= now then return { FENCED, 'expired', era } end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
if ARGV[4] ~= nil and ARGV[4] ~= '' then
  info.mem = cjson.decode(ARGV[4])
  set_json(KEYS[2], ARGV[1], info)
end
local q = in_quarantine(KEYS[4], now)
local sweep, interval = 0, tonumber(ARGV[5]) or 0
if interval > 0 and now - (tonumber(redis.call('HGET', KEYS[4], 'sweptAt') or '') or 0) >= interval then
  redis.call('HSET', KEYS[4], 'sweptAt', now, 'sweptBy', ARGV[1])
  sweep = 1
end
return { OK, now, load_of(KEYS[3], ARGV[1]), era, q and q - now or 0, replicas, sweep }
