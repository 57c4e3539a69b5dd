-- KEYS: users, streams, extra, appstreams, this worker's session set
-- ARGV: user_id, member_json, session_id, max_users, channel, session_entry_prefix, ttl, mode
-- mode 'join': a login; replaces an older session of the same user (kickout, no user event).
-- mode 'restore': re-adds a live session after Redis lost it; silent, never replaces anyone.
local users, streams, extra, appstreams, sessions = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local user_id, member_json, session_id = ARGV[1], ARGV[2], ARGV[3]
local max_users, channel, prefix, ttl, mode = tonumber(ARGV[4]), ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8]

local replaced = ''
local existing = redis.call('HGET', users, user_id)
if existing then
  local old = cjson.decode(existing)
  if old.sessionId ~= session_id then
    if mode == 'restore' then
      return {'superseded'}
    end
    replaced = old.sessionId
    redis.call('SREM', worker_sessions(old.workerId), prefix .. old.sessionId)
    publish(channel, {type = 'kickout', userId = user_id, sessionId = old.sessionId})
    drop_streams_of(streams, appstreams, user_id, channel)
  end
elseif redis.call('HLEN', users) >= max_users then
  return {'full'}
end

redis.call('HSET', users, user_id, member_json)
redis.call('SADD', sessions, prefix .. session_id)
touch(ttl, users, streams, extra)
if not existing and mode == 'join' then
  local member = cjson.decode(member_json)
  publish(channel, {type = 'userAdded', user = member.user, onlineCount = redis.call('HLEN', users)})
end
return {'ok', replaced, redis.call('HVALS', users), redis.call('HVALS', streams), redis.call('HVALS', extra)}
