-- KEYS: streams, appstreams ; ARGV: user_id, stream_id, channel
local streams, appstreams = KEYS[1], KEYS[2]
local user_id, stream_id, channel = ARGV[1], ARGV[2], ARGV[3]
local stream = owned_stream(streams, stream_id, user_id)
if not stream then
  return 'not_found'
end
redis.call('HDEL', streams, stream_id)
redis.call('HDEL', appstreams, stream_id)
publish(channel, {type = 'streamRemoved', stream = stream})
return 'ok'
