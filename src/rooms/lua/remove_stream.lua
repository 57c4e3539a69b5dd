-- KEYS: streams, appstreams, the entry set of the worker that holds (or held) the stream
-- ARGV: user_id, stream_id, channel, holder, entry
-- holder (may be empty): remove only if that worker holds the stream (reaping a dead worker
-- must not remove the same stream id published again through another one).
local streams, appstreams, entries = KEYS[1], KEYS[2], KEYS[3]
local user_id, stream_id, channel, holder, entry = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
redis.call('SREM', entries, entry)
local stream = owned_stream(streams, stream_id, user_id)
if not stream then
  return 'not_found'
end
if holder ~= '' and stream[F.holder] and stream[F.holder] ~= holder then
  return 'not_found'
end
redis.call('HDEL', streams, stream_id)
redis.call('HDEL', appstreams, stream_id)
publish(channel, {[F.type] = E.stream_removed, [F.stream] = public_stream(stream)})
return 'ok'
