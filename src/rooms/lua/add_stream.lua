-- KEYS: users, streams, appstreams, the holding worker's entry set
-- ARGV: user_id, session_id, stream_id, stored_json, room_id, channel, room_key_prefix, ttl,
--       mode, entry, deadline
-- mode 'publish' announces the stream; 'restore' re-adds it silently after Redis lost it.
-- stored_json carries the worker whose relay holds the media (F.holder), so that reaping a
-- dead worker removes only the streams it held, not a republish of the same id elsewhere.
local users, streams, appstreams, entries = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local user_id, session_id, stream_id, stored_json = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local room_id, channel, room_key_prefix, ttl, mode = ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]), ARGV[9]
local entry = ARGV[10]
if expired(ARGV[11]) then
  return 'expired'
end

local existing = redis.call('HGET', users, user_id)
if not existing or cjson.decode(existing)[F.session_id] ~= session_id then
  return 'not_member'
end
local holder_room = redis.call('HGET', appstreams, stream_id)
if holder_room then
  local held = redis.call('HGET', room_key_prefix .. holder_room .. ':s', stream_id)
  if held then
    if holder_room == room_id and user_of(cjson.decode(held)) == user_id then
      -- Already announced: only the worker holding its media may have changed.
      redis.call('HSET', streams, stream_id, stored_json)
      redis.call('SADD', entries, entry)
      return 'ok'
    end
    return 'taken'
  end
  -- The index pointed at a room that no longer has the stream: a leftover, reuse it.
end
redis.call('HSET', streams, stream_id, stored_json)
redis.call('HSET', appstreams, stream_id, room_id)
redis.call('SADD', entries, entry)
touch(ttl, streams)
if mode == 'publish' then
  publish(channel, {[F.type] = E.stream_added, [F.stream] = public_stream(cjson.decode(stored_json))})
end
return 'ok'
