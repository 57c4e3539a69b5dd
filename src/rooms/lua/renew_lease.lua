-- KEYS: workers, clock ; ARGV: worker_id, gap_ms, dead_after_ms
-- Renews this worker's lease on Redis's clock: its score becomes the moment it counts as dead
-- (each worker brings its own lease). Returns {known, now}: known is 0 when the worker was
-- not registered (Redis lost its data, or other workers reaped this one while it could not
-- reach Redis), and the worker must then put its sessions back.
local workers, clock = KEYS[1], KEYS[2]
local worker_id, gap_ms, dead_after = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
observe(clock, workers, now, gap_ms)
local known = redis.call('ZSCORE', workers, worker_id)
redis.call('ZADD', workers, now + dead_after, worker_id)
if known then
  return {1, now}
end
return {0, now}
