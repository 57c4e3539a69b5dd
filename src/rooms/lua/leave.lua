-- KEYS: users, streams, extra, appstreams, session set of the worker that asks
-- ARGV: user_id, session_id, channel, session_entry
local users, streams, extra, appstreams, sessions = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local user_id, session_id, channel, entry = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

redis.call('SREM', sessions, entry)
local existing = redis.call('HGET', users, user_id)
if not existing then
  return 0
end
local member = cjson.decode(existing)
if member.sessionId ~= session_id then
  return 0
end
redis.call('SREM', worker_sessions(member.workerId), entry)
drop_streams_of(streams, appstreams, user_id, channel)
redis.call('HDEL', users, user_id)
local count = redis.call('HLEN', users)
publish(channel, {type = 'userRemoved', user = member.user, onlineCount = count})
if count == 0 then
  redis.call('DEL', users, streams, extra)
end
return 1
