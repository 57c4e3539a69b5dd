-- KEYS: workers, clock ; ARGV: worker_id (the reaper), gap_ms, limit
-- Claims workers whose lease deadline passed. Deadlines move with any silence of Redis (see
-- observe), so a frozen or unreachable Redis never makes a live worker look dead. Each dead
-- worker is claimed once (ZREM), by the reaper that returns it.
-- Returns a flat list: worker id, its lease deadline (Redis ms, as a string), and so on.
local workers, clock = KEYS[1], KEYS[2]
local me, gap_ms, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
observe(clock, workers, now, gap_ms)
local claimed = {}
local stale = redis.call('ZRANGEBYSCORE', workers, '-inf', '(' .. now, 'WITHSCORES', 'LIMIT', 0, limit)
for i = 1, #stale, 2 do
  local worker = stale[i]
  if worker ~= me then
    redis.call('ZREM', workers, worker)
    table.insert(claimed, worker)
    table.insert(claimed, string.format('%d', math.floor(tonumber(stale[i + 1]))))
  end
end
return claimed
