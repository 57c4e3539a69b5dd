-- Helpers shared by every room script. The tables F (JSON field names) and E (event types)
-- come before this file, generated from rooms/redis/contract.rs: scripts never spell a field.
-- Events are published in the same script as the change they describe, so every worker sees
-- a room's events in the order its state changed.

-- Redis's own clock in milliseconds (scripts are replicated by effect, so TIME is allowed).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A worker stops waiting for a script after its Redis timeout and tells its client the
-- request failed; a script that only runs later (Redis was frozen) must then change nothing.
-- deadline is in Redis milliseconds; 0 means none.
local function expired(deadline)
  deadline = tonumber(deadline)
  return deadline > 0 and now_ms() > deadline
end

local function publish(channel, event)
  redis.call('PUBLISH', channel, cjson.encode(event))
end

local function touch(ttl, ...)
  for _, key in ipairs({...}) do
    redis.call('EXPIRE', key, ttl)
  end
end

local function user_of(record)
  return record[F.user][F.user_id]
end

-- A stored stream as members see it (without the worker that holds it).
local function public_stream(stream)
  stream[F.holder] = nil
  return stream
end

-- Removes every stream of user_id from the room (and the app's stream index), publishing
-- streamRemoved for each.
local function drop_streams_of(streams, appstreams, user_id, channel)
  local all = redis.call('HGETALL', streams)
  for i = 1, #all, 2 do
    local stream = cjson.decode(all[i + 1])
    if user_of(stream) == user_id then
      redis.call('HDEL', streams, all[i])
      redis.call('HDEL', appstreams, all[i])
      publish(channel, {[F.type] = E.stream_removed, [F.stream] = public_stream(stream)})
    end
  end
end

-- Removes a member the business server removed: its session hears `kickout` with the cause,
-- its streams and the user are DELETEd, and a repair may not put the session back (the
-- kicked key, which holds the cause). Returns true if the user was a member.
local function remove_member(users, streams, appstreams, channel, user_id, cause_json, kicked_prefix, kicked_ttl)
  local existing = redis.call('HGET', users, user_id)
  if not existing then
    return false
  end
  local member = cjson.decode(existing)
  local session_id = member[F.session_id]
  publish(channel, {[F.type] = E.kickout, [F.event_user_id] = user_id, [F.event_session_id] = session_id,
    [F.cause] = cjson.decode(cause_json)})
  redis.call('SET', kicked_prefix .. session_id, cause_json, 'EX', kicked_ttl)
  drop_streams_of(streams, appstreams, user_id, channel)
  redis.call('HDEL', users, user_id)
  publish(channel, {[F.type] = E.user_removed, [F.user] = member[F.user], [F.online_count] = redis.call('HLEN', users)})
  return true
end

-- The stream `stream_id` of `streams` if user_id publishes it, else nil.
local function owned_stream(streams, stream_id, user_id)
  local held = redis.call('HGET', streams, stream_id)
  if not held then
    return nil
  end
  local stream = cjson.decode(held)
  if user_of(stream) ~= user_id then
    return nil
  end
  return stream
end

-- Notes that Redis answers now. Leases are deadlines (scores of `workers`). When nobody ran a
-- lease script for longer than gap_ms, Redis was unreachable, frozen or restarted (or every
-- worker was): nobody could renew, so every deadline moves by the silence. Only renewals
-- missed while Redis was answering count against a worker.
local function observe(clock, workers, now, gap_ms)
  local last = tonumber(redis.call('GET', clock))
  if last and now - last > gap_ms then
    local silence = now - last
    local all = redis.call('ZRANGE', workers, 0, -1, 'WITHSCORES')
    for i = 1, #all, 2 do
      redis.call('ZADD', workers, tonumber(all[i + 1]) + silence, all[i])
    end
  end
  redis.call('SET', clock, now)
end
