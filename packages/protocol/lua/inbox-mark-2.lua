--[[
  Records inbound messages as delivered to the outbox: each id joins the session's seen set (newest `keep` kept),
  and, when `advance` is '1', each chat's cursor moves to the newest message delivered in it (never back) and the
  catch-up watermark moves to `watermark` (never back). Outside the registry: its keys are the session's own.

  KEYS[1] seen          ZSET message id -> timestamp (ms)
  KEYS[2] cursors       HASH chat id -> JSON {id, ts}; '*' -> watermark (ms)

  ARGV[1] keep          seen ids kept per session (count)
  ARGV[2] ttlMs         both keys expire this long after the last message (ms)
  ARGV[3] advance       '1' to move cursors and the watermark, '0' to only record the ids as seen
  ARGV[4] watermark     catch-up watermark (ms), '' for none
  ARGV[5] messages      JSON array of [id, chatId, timestamp ms]

  Reply: {1 OK, added:number}   ids that were not seen before
]]
--@include common
local added = 0
for _, m in ipairs(cjson.decode(ARGV[5])) do
  local id, chat, ts = m[1], m[2], tonumber(m[3])
  added = added + redis.call('ZADD', KEYS[1], ts, id)
  if ARGV[3] == '1' then
    local cur = redis.call('HGET', KEYS[2], chat)
    if not cur or tonumber(cjson.decode(cur).ts) <= ts then
      redis.call('HSET', KEYS[2], chat, cjson.encode({ id = id, ts = fmt(ts) }))
    end
  end
end
if ARGV[3] == '1' and ARGV[4] ~= '' then
  local w = redis.call('HGET', KEYS[2], '*')
  if not w or tonumber(w) < tonumber(ARGV[4]) then redis.call('HSET', KEYS[2], '*', ARGV[4]) end
end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -tonumber(ARGV[1]) - 1)
local ttl = tonumber(ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ttl) end
return { OK, added }
