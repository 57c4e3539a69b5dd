-- KEYS: users, streams, extra, appstreams, the app's room index, the room's closed key
-- ARGV: channel, cause_json, ban_secs, kicked_prefix, kicked_ttl, room_id, deadline
-- Every session hears `kickout` first; then every stream and every user is DELETEd, and with
-- ban_secs > 0 logins to the room are refused for that long.
-- Returns {users removed, streams removed}, or {-1, 0} when Redis runs it after the worker gave
-- up waiting (it then changes nothing).
local users, streams, extra, appstreams, app_rooms, closed = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local channel, cause_json, ban_secs = ARGV[1], ARGV[2], tonumber(ARGV[3])
local kicked_prefix, kicked_ttl, room_id = ARGV[4], tonumber(ARGV[5]), ARGV[6]
if expired(ARGV[7]) then
  return {-1, 0}
end
if ban_secs > 0 then
  redis.call('SET', closed, '1', 'EX', ban_secs)
end
local all = redis.call('HGETALL', users)
local members = {}
for i = 1, #all, 2 do
  table.insert(members, {all[i], cjson.decode(all[i + 1])})
end
table.sort(members, function(a, b) return a[1] < b[1] end)
local cause = cjson.decode(cause_json)
for _, pair in ipairs(members) do
  local session_id = pair[2][F.session_id]
  publish(channel, {[F.type] = E.kickout, [F.event_user_id] = pair[1], [F.event_session_id] = session_id,
    [F.cause] = cause})
  redis.call('SET', kicked_prefix .. session_id, cause_json, 'EX', kicked_ttl)
end
local stream_list = redis.call('HGETALL', streams)
local streams_removed = 0
for i = 1, #stream_list, 2 do
  redis.call('HDEL', appstreams, stream_list[i])
  publish(channel, {[F.type] = E.stream_removed, [F.stream] = public_stream(cjson.decode(stream_list[i + 1]))})
  streams_removed = streams_removed + 1
end
redis.call('DEL', streams)
for _, pair in ipairs(members) do
  redis.call('HDEL', users, pair[1])
  publish(channel, {[F.type] = E.user_removed, [F.user] = pair[2][F.user], [F.online_count] = redis.call('HLEN', users)})
end
redis.call('DEL', users, streams, extra)
redis.call('ZREM', app_rooms, room_id)
return {#members, streams_removed}
