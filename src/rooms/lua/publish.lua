-- KEYS: none ; ARGV: channel, event_json, deadline
-- A message or command: published only if the worker still waits for the answer.
if expired(ARGV[3]) then
  return 0
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
