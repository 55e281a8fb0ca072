--[[
  Makes an uploaded version of a session's data the one the next owner restores: the fencing token (owner,
  incarnation, epoch) is checked here, in the same script as the registry, so a writer that lost the session while
  uploading is refused however late its commit arrives. Swaps the pointer, forgets the upload, and hands back what
  the caller must delete: the previous version and this session's uploads abandoned for longer than the timeout.

  KEYS[1] instances     ZSET instance id -> lease deadline (ms)
  KEYS[2] instance-info HASH instance id -> JSON
  KEYS[3] sessions      HASH session id -> JSON record
  KEYS[4] data          HASH session id -> JSON committed version
  KEYS[5] data-uploads  ZSET <sessionId>/<uploadId> -> upload start (ms)

  ARGV[1] instanceId    instance id
  ARGV[2] incarnation   incarnation
  ARGV[3] sessionId     session id
  ARGV[4] epoch         the epoch the upload was begun under (decimal string)
  ARGV[5] uploadId      the upload id given to data-begin
  ARGV[6] size          size of the uploaded bytes (bytes)
  ARGV[7] digest        SHA-256 of the uploaded bytes (64 hex digits)
  ARGV[8] uploadTimeoutMs  uploads of this session begun longer ago are garbage (ms)

  Reply: {1 OK, version:number, committedAt:number, previousUploadId, ...garbage}
         {-1 FENCED, reason}
         {-8 NOT_OWNER, owner, epoch}
         {-10 NOT_FOUND}
         {-11 UPLOAD_EXPIRED}
]]
--@include common
local id, inc, sid, epoch, upload = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now = now_ms()
local prev = get_json(KEYS[4], sid)
-- This very commit already ran: a client resends a script whose reply was lost (Redis restarted from its AOF
-- after executing it). The same answer again, whatever happened to the lease since: the version is committed, and
-- a refusal now would make the writer delete the bytes the pointer names.
if prev and prev.uploadId == upload and prev.writer == id and prev.epoch == epoch then
  return { OK, tonumber(prev.version), tonumber(prev.committedAt), prev.previousUploadId or '' }
end
local _, _, refused = my_session_at(KEYS[1], KEYS[2], KEYS[3], id, inc, sid, epoch, now)
if refused then return refused end
local member = sid .. '/' .. upload
-- Collected as garbage (or dropped) meanwhile: its bytes may be gone, so it must never become the pointer.
if not redis.call('ZSCORE', KEYS[5], member) then return { UPLOAD_EXPIRED } end
redis.call('ZREM', KEYS[5], member)
local version = (prev and tonumber(prev.version) or 0) + 1
local replaced = prev and prev.uploadId or ''
set_json(KEYS[4], sid, {
  version = version, uploadId = upload, size = tonumber(ARGV[6]), sha256 = ARGV[7],
  epoch = epoch, writer = id, committedAt = now, previousUploadId = replaced
})
local reply = { OK, version, now, replaced }
-- Bounded: the uploads pending across the namespace are at most a few per session.
local prefix = sid .. '/'
local old = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now - tonumber(ARGV[8]), 'LIMIT', 0, 500)
for _, m in ipairs(old) do
  if string.sub(m, 1, #prefix) == prefix then
    redis.call('ZREM', KEYS[5], m)
    reply[#reply + 1] = string.sub(m, #prefix + 1)
  end
end
return reply
