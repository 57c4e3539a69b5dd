-- KEYS: users, streams, extra, appstreams, the entry set of the worker that held the session,
--       the app's room index
-- ARGV: user_id, session_id, channel, entry, room_id
-- Removes the member only if session_id still holds it (a newer session is left alone).
-- Never refused for lateness: leaving late is still what the worker wants.
local users, streams, extra, appstreams, entries = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local app_rooms = KEYS[6]
local user_id, session_id, channel, entry, room_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

redis.call('SREM', entries, entry)
local existing = redis.call('HGET', users, user_id)
if not existing then
  return 0
end
local member = cjson.decode(existing)
if member[F.session_id] ~= session_id then
  return 0
end
drop_streams_of(streams, appstreams, user_id, channel)
redis.call('HDEL', users, user_id)
local count = redis.call('HLEN', users)
publish(channel, {[F.type] = E.user_removed, [F.user] = member[F.user], [F.online_count] = count})
if count == 0 then
  redis.call('DEL', users, streams, extra)
  redis.call('ZREM', app_rooms, room_id)
end
return 1
