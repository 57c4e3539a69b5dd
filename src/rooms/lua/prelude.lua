-- Shared helpers, prepended to every room script.
-- Events are published in the same script as the change they describe, so every worker
-- sees a room's events in the order its state changed.
local function publish(channel, event)
  redis.call('PUBLISH', channel, cjson.encode(event))
end

local function touch(ttl, ...)
  for _, key in ipairs({...}) do
    redis.call('EXPIRE', key, ttl)
  end
end

-- Removes every stream of user_id from the room (and the app's stream index), publishing
-- streamRemoved for each unless silent.
local function drop_streams_of(streams, appstreams, user_id, channel)
  local all = redis.call('HGETALL', streams)
  for i = 1, #all, 2 do
    local stream = cjson.decode(all[i + 1])
    if stream.user.userID == user_id then
      redis.call('HDEL', streams, all[i])
      redis.call('HDEL', appstreams, all[i])
      publish(channel, {type = 'streamRemoved', stream = stream})
    end
  end
end

local function worker_sessions(worker_id)
  return 'huddle:w:' .. worker_id .. ':s'
end

-- The stream `stream_id` of `streams` if user_id publishes it, else nil.
local function owned_stream(streams, stream_id, user_id)
  local held = redis.call('HGET', streams, stream_id)
  if not held then
    return nil
  end
  local stream = cjson.decode(held)
  if stream.user.userID ~= user_id then
    return nil
  end
  return stream
end
