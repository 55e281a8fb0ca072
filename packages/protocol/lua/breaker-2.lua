--[[
  The fleet-wide start breaker. Every instance records the outcome of each start; when most starts across the fleet
  fail the same way within the window, the breaker opens (once: only the caller that opened it gets 'opened', so one
  alert goes out) and restarts wait, except a few probe starts per probe interval. The next successful start anywhere
  closes it. Counts distinct sessions, so one session crash-looping on its own never opens it.

  KEYS[1] breaker        HASH state, kind, openedAt, probeRound, probesLeft
  KEYS[2] breaker-starts ZSET "<ms>|<sessionId>|<outcome>" -> start time (ms); outcome 'ok' or 'fail:<kind>'

  ARGV[1] op             'ok' (a start succeeded), 'fail' (a start failed), 'permit' (may a restart go now?), 'state'
  ARGV[2] sessionId      session id of the start ('' for permit and state)
  ARGV[3] kind           the failure's kind, e.g. 'start deadline passed' ('' unless op is fail)
  ARGV[4] windowMs       window over which starts are counted (ms)
  ARGV[5] minFailures    distinct sessions that must fail the same way before the breaker opens (count)
  ARGV[6] ratioPercent   share of the window's starts that must have failed that way (percent)
  ARGV[7] probeIntervalMs while open: length of a probe round (ms)
  ARGV[8] probeStarts    while open: restarts permitted per probe round (count)

  Reply: {1 OK, state:'closed'|'open', change:''|'opened'|'closed'|'probe', kind}
         {-12 BREAKER_OPEN, kind, retryAfterMs:number}   permit refused until the next probe round
]]
--@include common
local MAX_STARTS = 2000
local now = now_ms()
local op = ARGV[1]
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local kind = redis.call('HGET', KEYS[1], 'kind') or ''

if op == 'state' then return { OK, state, '', kind } end

if op == 'permit' then
  if state ~= 'open' then return { OK, state, '', '' } end
  local interval = tonumber(ARGV[7])
  local round = tonumber(redis.call('HGET', KEYS[1], 'probeRound') or '0')
  local left = tonumber(redis.call('HGET', KEYS[1], 'probesLeft') or '0')
  if now >= round + interval then
    round = now
    left = tonumber(ARGV[8])
    redis.call('HSET', KEYS[1], 'probeRound', round)
  end
  if left > 0 then
    redis.call('HSET', KEYS[1], 'probesLeft', left - 1)
    return { OK, state, 'probe', kind }
  end
  redis.call('HSET', KEYS[1], 'probesLeft', 0)
  return { BREAKER_OPEN, kind, round + interval - now }
end

if op == 'ok' then
  if state == 'open' then
    -- Starts work again: a fresh window, so the failures that opened it cannot open it again at once.
    redis.call('DEL', KEYS[2])
    redis.call('HSET', KEYS[1], 'state', 'closed', 'kind', '', 'closedAt', now)
    return { OK, 'closed', 'closed', kind }
  end
  redis.call('ZADD', KEYS[2], now, now .. '|' .. ARGV[2] .. '|ok')
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -MAX_STARTS - 1)
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[4]))
  return { OK, 'closed', '', '' }
end

-- op == 'fail'
if state == 'open' then return { OK, 'open', '', kind } end
local window = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('ZADD', KEYS[2], now, now .. '|' .. ARGV[2] .. '|fail:' .. ARGV[3])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -MAX_STARTS - 1)
redis.call('PEXPIRE', KEYS[2], window)
local wanted = 'fail:' .. ARGV[3]
local total, same, sessions, distinct = 0, 0, {}, 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local _, _, sid, outcome = string.find(member, '^%d+|([^|]*)|(.*)$')
  total = total + 1
  if outcome == wanted then
    same = same + 1
    if not sessions[sid] then
      sessions[sid] = true
      distinct = distinct + 1
    end
  end
end
if distinct >= tonumber(ARGV[5]) and same * 100 >= tonumber(ARGV[6]) * total then
  redis.call('HSET', KEYS[1], 'state', 'open', 'kind', ARGV[3], 'openedAt', now, 'probeRound', now, 'probesLeft', 0)
  return { OK, 'open', 'opened', ARGV[3] }
end
return { OK, 'closed', '', '' }
