-- KEYS: users, streams, extra, appstreams, the app's room index
-- ARGV: channel, cause_json, ban_secs, ban_prefix, kicked_prefix, kicked_ttl, room_id, deadline,
--       user_id...
-- Removes the listed users (see remove_member) and, with ban_secs > 0, bans each listed user
-- from logging in to the room for that long (also users not in the room now).
-- Returns {'ok', ids of the users that were members...}, or {'expired'} when Redis runs it
-- after the worker gave up waiting (it then changes nothing).
local users, streams, extra, appstreams, app_rooms = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local channel, cause_json, ban_secs = ARGV[1], ARGV[2], tonumber(ARGV[3])
local ban_prefix, kicked_prefix, kicked_ttl, room_id = ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7]
if expired(ARGV[8]) then
  return {'expired'}
end
local kicked = {'ok'}
for i = 9, #ARGV do
  local user_id = ARGV[i]
  if remove_member(users, streams, appstreams, channel, user_id, cause_json, kicked_prefix, kicked_ttl) then
    table.insert(kicked, user_id)
  end
  if ban_secs > 0 then
    redis.call('SET', ban_prefix .. user_id, '1', 'EX', ban_secs)
  end
end
if redis.call('HLEN', users) == 0 then
  redis.call('DEL', users, streams, extra)
  redis.call('ZREM', app_rooms, room_id)
end
return kicked
