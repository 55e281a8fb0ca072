--[[
  Reads a session's owner in one round trip: the record, the owner's URL and whether its lease is valid.

  KEYS[1] instances     ZSET instance id -> lease deadline (ms)
  KEYS[2] instance-info HASH instance id -> JSON
  KEYS[3] sessions      HASH session id -> JSON record

  ARGV[1] sessionId     session id

  Reply: {1 OK, owner, epoch, status, desired, ownerUrl, live:'1'|'0', serverMs:number, reason, metadata}
                reason: '' when none; metadata: JSON object text, '' when none
         {-10 NOT_FOUND}
]]
--@include common
local now = now_ms()
local rec = get_json(KEYS[3], ARGV[1])
if not rec then return { NOT_FOUND } end
local url, live = '', '0'
if rec.owner and rec.owner ~= '' then
  local info, _ = live_instance(KEYS[1], KEYS[2], rec.owner, now)
  if info and info.inc == rec.inc then url, live = info.url, '1'
  else
    local dead = get_json(KEYS[2], rec.owner)
    url = dead and dead.url or ''
  end
end
return {
  OK, rec.owner or '', rec.epoch or '0', rec.status or 'STOPPED', rec.desired or 'stopped', url, live, now,
  rec.reason or '', rec.metadata or ''
}
