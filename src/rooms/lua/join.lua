-- KEYS: users, streams, extra, appstreams, this worker's entry set, the app's room index,
--       the room's closed key, the user's ban key, the session's kicked key
-- ARGV: user_id, member_json, session_id, max_users, channel, entry, ttl, mode, deadline, room_id
-- mode 'join': a login; replaces an older session of the same user (kickout, no user event);
--   refused while the business server keeps the room closed or the user banned.
-- mode 'restore': re-adds a live session Redis lost; silent, never replaces anyone, never
--   puts back a session the business server removed.
local users, streams, extra, appstreams, entries = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local app_rooms, closed, ban, kicked = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local user_id, member_json, session_id = ARGV[1], ARGV[2], ARGV[3]
local max_users, channel, entry, ttl, mode = tonumber(ARGV[4]), ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8]
local room_id = ARGV[10]
if expired(ARGV[9]) then
  return {'expired'}
end
if mode == 'restore' then
  local cause = redis.call('GET', kicked)
  if cause then
    return {'kicked', cause}
  end
else
  local closed_ms = redis.call('PTTL', closed)
  if closed_ms > 0 then
    return {'closed', tostring(closed_ms)}
  end
  local ban_ms = redis.call('PTTL', ban)
  if ban_ms > 0 then
    return {'banned', tostring(ban_ms)}
  end
end

local replaced = ''
local existing = redis.call('HGET', users, user_id)
if existing then
  local old = cjson.decode(existing)
  local old_session = old[F.session_id]
  if old_session ~= session_id then
    if mode == 'restore' then
      return {'superseded'}
    end
    -- The old session's worker drops it from its entries when it hears the kickout.
    replaced = old_session
    publish(channel, {[F.type] = E.kickout, [F.event_user_id] = user_id, [F.event_session_id] = old_session})
    drop_streams_of(streams, appstreams, user_id, channel)
  end
elseif redis.call('HLEN', users) >= max_users then
  return {'full'}
end

redis.call('HSET', users, user_id, member_json)
redis.call('ZADD', app_rooms, 0, room_id)
redis.call('SADD', entries, entry)
touch(ttl, users, streams, extra)
if not existing and mode == 'join' then
  local member = cjson.decode(member_json)
  publish(channel, {[F.type] = E.user_added, [F.user] = member[F.user], [F.online_count] = redis.call('HLEN', users)})
end
return {'ok', replaced, redis.call('HVALS', users), redis.call('HVALS', streams), redis.call('HVALS', extra)}
