-- KEYS: streams ; ARGV: user_id, stream_id, extra_info, channel, deadline
local streams = KEYS[1]
local user_id, stream_id, extra_info, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if expired(ARGV[5]) then
  return 'expired'
end
local stream = owned_stream(streams, stream_id, user_id)
if not stream then
  return 'not_found'
end
stream[F.extra_info] = extra_info
redis.call('HSET', streams, stream_id, cjson.encode(stream))
publish(channel, {[F.type] = E.stream_extra_info, [F.stream] = public_stream(stream)})
return 'ok'
