-- KEYS: users, extra ; ARGV: key, extra_json, max_keys, channel, ttl, mode, deadline
-- mode 'set' announces the change; 'restore' re-adds a cached value only where none exists.
local users, extra = KEYS[1], KEYS[2]
local key, extra_json, max_keys, channel, ttl, mode = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]), ARGV[6]
if expired(ARGV[7]) then
  return 'expired'
end
if redis.call('HLEN', users) == 0 then
  return 'not_member'
end
if mode == 'restore' then
  redis.call('HSETNX', extra, key, extra_json)
  touch(ttl, extra)
  return 'ok'
end
if redis.call('HEXISTS', extra, key) == 0 and redis.call('HLEN', extra) >= max_keys then
  return 'too_many'
end
redis.call('HSET', extra, key, extra_json)
touch(ttl, extra)
publish(channel, {[F.type] = E.room_extra_info, [F.extra] = cjson.decode(extra_json)})
return 'ok'
