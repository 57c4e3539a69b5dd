-- KEYS: streams ; ARGV: user_id, stream_id, audio ('1', '0' or '' to keep), video (same), channel, deadline
-- Records what the publisher itself turned off (a signal: the relay keeps forwarding) and
-- announces it with byServer false; the server's own flags are left as they are. 'not_found'
-- unless user_id publishes the stream; 'expired' (and no change) when Redis runs it after the
-- worker gave up waiting.
local streams = KEYS[1]
local user_id, stream_id, audio, video, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if expired(ARGV[6]) then
  return 'expired'
end
local stream = owned_stream(streams, stream_id, user_id)
if not stream then
  return 'not_found'
end
if audio ~= '' then
  stream[F.publisher_audio_muted] = audio == '1'
end
if video ~= '' then
  stream[F.publisher_video_muted] = video == '1'
end
redis.call('HSET', streams, stream_id, cjson.encode(stream))
publish(channel, {[F.type] = E.stream_muted, [F.stream] = public_stream(stream), [F.by_server] = false})
return cjson.encode(stream)
