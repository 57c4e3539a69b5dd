-- KEYS: users, streams, appstreams
-- ARGV: user_id, session_id, stream_id, stream_json, room_id, channel, stream_key_prefix, ttl, mode, worker
-- mode 'publish' announces the stream; 'restore' re-adds it silently after Redis lost it.
-- worker: the worker whose relay holds the media, kept in the stored record as `holder` so that
-- reaping a dead worker removes only the streams it held (not a republish of the same id).
local users, streams, appstreams = KEYS[1], KEYS[2], KEYS[3]
local user_id, session_id, stream_id, stream_json = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local room_id, channel, stream_key_prefix, ttl, mode = ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]), ARGV[9]
local worker = ARGV[10]
local record = cjson.decode(stream_json)
record.holder = worker

local existing = redis.call('HGET', users, user_id)
if not existing or cjson.decode(existing).sessionId ~= session_id then
  return 'not_member'
end
local holder = redis.call('HGET', appstreams, stream_id)
if holder then
  local held = redis.call('HGET', stream_key_prefix .. holder .. ':s', stream_id)
  if held then
    if holder == room_id and cjson.decode(held).user.userID == user_id then
      -- Already announced: only the worker holding its media may have changed.
      redis.call('HSET', streams, stream_id, cjson.encode(record))
      return 'ok'
    end
    return 'taken'
  end
  -- The index pointed at a room that no longer has the stream: a leftover, reuse it.
end
redis.call('HSET', streams, stream_id, cjson.encode(record))
redis.call('HSET', appstreams, stream_id, room_id)
touch(ttl, streams)
if mode == 'publish' then
  publish(channel, {type = 'streamAdded', stream = cjson.decode(stream_json)})
end
return 'ok'
