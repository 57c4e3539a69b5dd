-- KEYS: streams, appstreams ; ARGV: user_id, stream_id, channel, holder
-- holder (may be empty): remove only if that worker holds the stream (reaping a dead worker must
-- not remove the same stream id published again through another one).
local streams, appstreams = KEYS[1], KEYS[2]
local user_id, stream_id, channel, holder = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local stream = owned_stream(streams, stream_id, user_id)
if not stream then
  return 'not_found'
end
if holder ~= '' and stream.holder and stream.holder ~= holder then
  return 'not_found'
end
stream.holder = nil
redis.call('HDEL', streams, stream_id)
redis.call('HDEL', appstreams, stream_id)
publish(channel, {type = 'streamRemoved', stream = stream})
return 'ok'
