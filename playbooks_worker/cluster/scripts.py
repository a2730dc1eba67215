"""The Lua scripts: every state change that must be atomic is one round trip.

Each script starts with the keys and arguments it takes. All keys of one call share the run's hash tag, so
the scripts also run on Redis Cluster.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import NoScriptError

# A checkpoint: a record appended to its agent's journal if the writer's epoch is current, with the output it
# stands for published and the input it recorded consumed, in one atomic write. (Shared by the two scripts below.)
# KEYS: epoch, journal, agents, events, inbox
# ARGV: epoch ("" = unfenced: local mode), counter, signed record, agent id, event JSON or "", consume "1"/"0",
#       and optionally the counter and signed record of an earlier record written with it (a deferred receive)
# -> 1 written | -1 fenced (the run's epoch moved on) | -2 that checkpoint already exists
_APPEND = """
local function append()
  if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
  if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return -2 end
  if ARGV[7] and ARGV[7] ~= '' then
    if redis.call('HEXISTS', KEYS[2], ARGV[7]) == 1 then return -2 end
    redis.call('HSET', KEYS[2], ARGV[7], ARGV[8])
  end
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  redis.call('SADD', KEYS[3], ARGV[4])
  if ARGV[5] ~= '' then redis.call('XADD', KEYS[4], '*', 'event', ARGV[5]) end
  if ARGV[6] == '1' then redis.call('LPOP', KEYS[5]) end
  return 1
end
"""

APPEND_CHECKPOINT = _APPEND + "return append()\n"

# The checkpoint of a spread run's agent (DESIGN §5): APPEND_CHECKPOINT, plus the effects the recorded call had
# on other agents, in the same atomic write, so a message is delivered exactly when its send is recorded and an
# agent exists exactly when its creation is.
# KEYS: as APPEND_CHECKPOINT, then two per effect
# ARGV: as APPEND_CHECKPOINT (the earlier record's two given, '' when none), then four per effect:
#   'send',   message JSON, snoop event JSON, recipient id   KEYS: recipient's mailbox, recipient's unit
#   'create', unit JSON,    '',               agent id       KEYS: the new agent's unit, the run's units
# -> {1, agent ids to enqueue (woken recipients, created agents)...} | {-1} fenced | {-2} exists already
APPEND_WITH_EFFECTS = _APPEND + """
local written = append()
if written ~= 1 then return {written} end
local reply = {1}
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
local k = 6
for a = 9, #ARGV, 4 do
  if ARGV[a] == 'send' then
    redis.call('XADD', KEYS[k], '*', 'message', ARGV[a + 1])
    redis.call('XADD', KEYS[4], '*', 'event', ARGV[a + 2])
    if redis.call('HGET', KEYS[k + 1], 'state') == 'waiting'
        and redis.call('HGET', KEYS[k + 1], 'waiting_for') ~= 'user' then
      redis.call('HSET', KEYS[k + 1], 'state', 'queued', 'queued_at', now_ms)
      table.insert(reply, ARGV[a + 3])
    end
  elseif ARGV[a] == 'create' then
    if redis.call('HSETNX', KEYS[k], 'state', 'queued') == 1 then
      redis.call('HSET', KEYS[k], 'json', ARGV[a + 1], 'queued_at', now_ms)
      redis.call('SADD', KEYS[k + 1], ARGV[a + 3])
      table.insert(reply, ARGV[a + 3])
    end
  end
  k = k + 2
end
return reply
"""

# An agent of a spread run stops executing: its main playbook is done, or it waits (for a message, or for user
# input) and frees its worker. Then, atomically, whether the whole run is quiescent: every agent done or waiting
# for a message nobody can send. Parking bumps the agent's epoch: nothing the parked task might still do
# (a `finally`, a background task) can write again.
# KEYS: unit, unit's epoch, unit's lease, run, mailbox, run's inbox, units, unit's inbox, then the unit of every
#       agent of the run
# ARGV: epoch, 'done' | 'waiting' | 'failed', waiting for ('' | 'user' | a source), last mailbox entry id read,
#       unit JSON, lease value
# -> -1 fenced | -3 the run has agents not in KEYS: list them again | 0 something arrived meanwhile: keep going
#    | 1 parked, others still work | 2 parked and the run is over: the caller ends it | 3 parked, the run
#    waits for user input
PARK = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
if redis.call('SCARD', KEYS[7]) ~= #KEYS - 8 then return -3 end
if ARGV[2] == 'waiting' then
  if ARGV[3] == 'user' then
    if redis.call('LLEN', KEYS[6]) > 0 or redis.call('LLEN', KEYS[8]) > 0 then return 0 end
  else
    local last = redis.call('XREVRANGE', KEYS[5], '+', '-', 'COUNT', 1)
    local id = '0-0'
    if #last > 0 then id = last[1][1] end
    if id ~= ARGV[4] then return 0 end
  end
end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'waiting_for', ARGV[3], 'json', ARGV[5], 'clean', '1')
redis.call('INCR', KEYS[2])
if redis.call('GET', KEYS[3]) == ARGV[6] then redis.call('DEL', KEYS[3]) end
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
if ARGV[2] == 'failed' then
  redis.call('HSETNX', KEYS[4], 'ended', now_ms)
  return 1
end
local user = false
for i = 9, #KEYS do
  local state = redis.call('HGET', KEYS[i], 'state')
  if state ~= 'done' and state ~= 'waiting' then return 1 end
  if state == 'waiting' and redis.call('HGET', KEYS[i], 'waiting_for') == 'user' then user = true end
end
if user then return 3 end
if redis.call('HSETNX', KEYS[4], 'ended', now_ms) == 0 then return 1 end
return 2
"""

# A spread run's own state: written only while the run has not ended (a check-and-set: a cancel, or another
# agent's end of the run, is never overwritten), with the event that announces it in the same write.
# KEYS: run, events, inbox, then the run's other keys to expire with it
# ARGV: state, record JSON, event JSON or '', finished_ttl_ms ("0" = keep)
# -> 1 written | 0 the run had ended already | -2 asked to wait for input but input has arrived
SET_SPREAD_RUN = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'succeeded' or state == 'failed' or state == 'cancelled' then return 0 end
if ARGV[1] == 'waiting' and redis.call('LLEN', KEYS[3]) > 0 then return -2 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'json', ARGV[2])
redis.call('HDEL', KEYS[1], 'starting')
if ARGV[3] ~= '' then redis.call('XADD', KEYS[2], '*', 'event', ARGV[3]) end
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
"""

# Taking a unit. A run's own task also starts its attempt here, in the same write (store.acquire with a record):
# the record with the attempt begun, the status event naming the worker and epoch, and the run's agent ids back,
# so that starting costs one round trip.
# KEYS: unit (a run, or an agent of a spread run), epoch, lease, run (the same as unit for a run), and to start an
#       attempt: events, agents, units
# ARGV: owner, lease_ms, and to start an attempt: record JSON, status event JSON ("{epoch}" in it becomes the epoch)
# -> {epoch} acquired ({epoch, agent ids, unit ids} when starting an attempt) | {-1, holder} a live lease holds it
#    | {-2, state} not runnable | {-3} no such run
ACQUIRE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {-3} end
if state ~= 'queued' and state ~= 'running' then return {-2, state} end
local run_state = redis.call('HGET', KEYS[4], 'state')
if run_state ~= 'queued' and run_state ~= 'running' and run_state ~= 'waiting' then return {-2, run_state} end
local holder = redis.call('GET', KEYS[3])
if holder then return {-1, holder} end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[3], ARGV[1] .. ' ' .. epoch, 'PX', ARGV[2])
redis.call('HSET', KEYS[1], 'state', 'running')
if #KEYS == 4 then return {epoch} end
redis.call('HSET', KEYS[1], 'json', ARGV[3])
redis.call('XADD', KEYS[5], '*', 'event', (string.gsub(ARGV[4], '{epoch}', tostring(epoch))))
return {epoch, redis.call('SMEMBERS', KEYS[6]), redis.call('SMEMBERS', KEYS[7])}
"""

# KEYS: lease, run (for an agent of a spread run: its run's)
# ARGV: "<owner> <epoch>", lease_ms
# -> {1, cancel flag, run state} renewed | {0} the lease is gone or someone else's
RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0} end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, redis.call('HGET', KEYS[2], 'cancel') or '', redis.call('HGET', KEYS[2], 'state') or ''}
"""

# KEYS: lease
# ARGV: "<owner> <epoch>"
# -> 1 deleted | 0 not ours (any more)
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: run, epoch, lease, inbox, then optionally events and the run's other keys to expire with it (agents,
#       units, journals: same hash tag)
# ARGV: epoch, record JSON, state, finished_ttl_ms ("0" = keep), release "1"/"0", and optionally an event JSON
#       ('' = none) published to KEYS[5] in the same write: how the attempt ended, so that a run's end event exists
#       exactly when its final state does
# -> 1 saved | -1 fenced | -2 asked to wait for input but input has arrived: stay running
SAVE_RUN = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
if ARGV[3] == 'waiting' and redis.call('LLEN', KEYS[4]) > 0 then return -2 end
redis.call('HSET', KEYS[1], 'json', ARGV[2], 'state', ARGV[3])
if ARGV[3] == 'queued' then
  local now = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'queued_at', now[1] * 1000 + math.floor(now[2] / 1000))
end
if ARGV[5] == '1' then
  local lease = redis.call('GET', KEYS[3])
  if lease and string.sub(lease, -string.len(ARGV[1]) - 1) == ' ' .. ARGV[1] then redis.call('DEL', KEYS[3]) end
end
if ARGV[6] and ARGV[6] ~= '' then redis.call('XADD', KEYS[5], '*', 'event', ARGV[6]) end
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[4], ttl)
  for i = 5, #KEYS do redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
"""

# KEYS: run, inbox, events
# ARGV: text, event JSON
# -> 1 the run was waiting and is now queued, or is spread (enqueue it: its task wakes the agent that waits)
#    | 0 it will read the inbox itself | -3 no such run
SEND_INPUT = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -3 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('XADD', KEYS[3], '*', 'event', ARGV[2])
if state == 'running' and redis.call('HGET', KEYS[1], 'spread') == '1' then return 1 end
if state == 'waiting' then
  local now = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'state', 'queued', 'queued_at', now[1] * 1000 + math.floor(now[2] / 1000))
  return 1
end
return 0
"""

# A spread run (its agents are their own tasks) is cancelled at once; its running agents stop at their next
# heartbeat, which reports the run's state.
# KEYS: run, events
# ARGV: event JSON
# -> 'cancelled' stopped now (it was not running) | 'cancelling' the owner stops at its next await
#    | 'already <state>' when it had finished | '' no such run
CANCEL = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return '' end
if state == 'succeeded' or state == 'failed' or state == 'cancelled' then return 'already ' .. state end
if state == 'running' and redis.call('HGET', KEYS[1], 'spread') ~= '1' then
  redis.call('HSET', KEYS[1], 'cancel', '1')
  return 'cancelling'
end
redis.call('HSET', KEYS[1], 'state', 'cancelled')
redis.call('XADD', KEYS[2], '*', 'event', ARGV[1])
return 'cancelled'
"""

# KEYS: run, lease, requeue, events
# ARGV: guard_ms, event JSON, expected lease value or "" (then only an absent lease counts as expired)
# -> 1 the run is queued again (enqueue it) | 0 nothing to do
REAP = """
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[1], 'spread') == '1' then return 0 end
local lease = redis.call('GET', KEYS[2])
if lease then
  if ARGV[3] == '' or lease ~= ARGV[3] then return 0 end
  redis.call('DEL', KEYS[2])
end
if not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[1]) then return 0 end
local now = redis.call('TIME')
redis.call('HSET', KEYS[1], 'state', 'queued', 'queued_at', now[1] * 1000 + math.floor(now[2] / 1000))
redis.call('HINCRBY', KEYS[1], 'failovers', 1)
redis.call('XADD', KEYS[4], '*', 'event', ARGV[2])
return 1
"""


class Scripts:
    """The scripts registered on one client (redis-py caches them by SHA: EVALSHA, falling back to EVAL)."""

    @staticmethod
    def queue(pipe: Any, script: Any, keys: list[Any], args: list[Any]) -> None:
        """Queue `script` on a pipeline as a bare EVALSHA; read its reply with `reply`.

        redis-py's own scripts in a pipeline (`script(..., client=pipe)`) send SCRIPT EXISTS before every execute:
        a round trip more each time, for the case (a Redis restart, SCRIPT FLUSH) that `reply` handles instead."""
        pipe.evalsha(script.sha, len(keys), *keys, *args)

    @staticmethod
    def reply(reply: Any, script: Any, keys: list[Any], args: list[Any]) -> Any:
        """The reply of a script queued with `queue` (the pipeline executed with raise_on_error=False): Redis
        lost the script meanwhile, it is loaded and run again, alone."""
        if isinstance(reply, NoScriptError):
            return script(keys=keys, args=args)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def __init__(self, client: Any) -> None:
        self.append_checkpoint = client.register_script(APPEND_CHECKPOINT)
        self.append_with_effects = client.register_script(APPEND_WITH_EFFECTS)
        self.park = client.register_script(PARK)
        self.set_spread_run = client.register_script(SET_SPREAD_RUN)
        self.acquire = client.register_script(ACQUIRE)
        self.renew = client.register_script(RENEW)
        self.release = client.register_script(RELEASE)
        self.save_run = client.register_script(SAVE_RUN)
        self.send_input = client.register_script(SEND_INPUT)
        self.cancel = client.register_script(CANCEL)
        self.reap = client.register_script(REAP)
