-- KEYS: streams ; ARGV: user_id, stream_id, extra_info, channel
local streams = KEYS[1]
local user_id, stream_id, extra_info, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local stream = owned_stream(streams, stream_id, user_id)
if not stream then
  return 'not_found'
end
stream.extraInfo = extra_info
redis.call('HSET', streams, stream_id, cjson.encode(stream))
publish(channel, {type = 'streamExtraInfo', stream = stream})
return 'ok'
