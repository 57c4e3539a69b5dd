-- KEYS: streams ; ARGV: stream_id, audio ('1', '0' or '' to keep), video (same), channel, deadline
-- Records which media of a stream the business server muted and announces it; 'expired' (and
-- no change) when Redis runs it after the worker gave up waiting.
local streams = KEYS[1]
local stream_id, audio, video, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if expired(ARGV[5]) then
  return 'expired'
end
local held = redis.call('HGET', streams, stream_id)
if not held then
  return 'not_found'
end
local stream = cjson.decode(held)
if audio ~= '' then
  stream[F.audio_muted] = audio == '1'
end
if video ~= '' then
  stream[F.video_muted] = video == '1'
end
redis.call('HSET', streams, stream_id, cjson.encode(stream))
publish(channel, {[F.type] = E.stream_muted, [F.stream] = public_stream(stream)})
return cjson.encode(stream)
