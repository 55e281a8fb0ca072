--[[
  Removes the pointer to a session's data, and forgets its pending uploads, when the session may lose its login
  data: it has no registry record, or its desired state is 'stopped' (logged out, stopped by request). A session that
  should run keeps its data whoever asks. The caller deletes the bytes the reply names.

  KEYS[1] sessions      HASH session id -> JSON record
  KEYS[2] data          HASH session id -> JSON committed version
  KEYS[3] data-uploads  ZSET <sessionId>/<uploadId> -> upload start (ms)

  ARGV[1] sessionId     session id

  Reply: {1 OK, previousUploadId, ...uploads}
         {-3 OWNED_ELSEWHERE, owner, epoch}
]]
--@include common
local sid = ARGV[1]
local rec = get_json(KEYS[1], sid)
if rec and rec.desired == 'running' then return { OWNED_ELSEWHERE, rec.owner or '', rec.epoch or '0' } end
local prev = get_json(KEYS[2], sid)
redis.call('HDEL', KEYS[2], sid)
local reply = { OK, prev and prev.uploadId or '' }
local prefix = sid .. '/'
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '+inf', 'LIMIT', 0, 500)) do
  if string.sub(m, 1, #prefix) == prefix then
    redis.call('ZREM', KEYS[3], m)
    reply[#reply + 1] = string.sub(m, #prefix + 1)
  end
end
return reply
