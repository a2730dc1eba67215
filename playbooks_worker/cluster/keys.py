"""Every Redis key of playbooks-worker, in one place.

`{R}` is the run id written as a Redis Cluster hash tag, so all keys of one run live in one slot and a Lua
script may touch several of them. `P` is the key prefix (`[cluster] key_prefix`, default `pbw`).

    P:{R}:run             hash    json (the run record, program sources included), state, queued_at, failovers,
                                  cancel. TTL `finished_ttl_s` once finished
    P:{R}:epoch           string  integer fencing epoch; INCR on every acquisition. Same TTL
    P:{R}:lease           string  "<owner> <epoch>", PX = lease_seconds; renewed by the owner's heartbeat
    P:{R}:agents          set     agent ids of the run. Same TTL
    P:{R}:journal:{A}     hash    checkpoint counter -> signed record (A = agent id). Same TTL
    P:{R}:events          stream  output (Say) and status events, read by `run` / `attach`. Same TTL
    P:{R}:inbox           list    user input not yet consumed by the run. Same TTL
    P:{R}:requeue         string  NX PX guard: one reaper re-enqueues an expired run at a time
    P:{R}:stale           string  NX PX guard: one sweep re-enqueues a run left queued too long at a time
    P:{R}:units           set     a spread run's agent ids (each agent its own task, DESIGN §5)
    P:{R}:unit:{A}        hash    one agent of a spread run, leased like a run: json (klass, kwargs, entry,
                                  skip), state (queued | running | waiting | done), waiting_for, queued_at,
                                  failovers. Same TTL
    P:{R}:epoch:{A}, P:{R}:lease:{A}, P:{R}:requeue:{A}, P:{R}:stale:{A}   as above, for agent A
    P:{R}:inbox:{A}       list    user input agent A claimed from the run's inbox, until its checkpoint consumes it
    P:{R}:mailbox:{A}     stream  messages to agent A; an entry is added in the same atomic write as the
                                  sender's checkpoint. Same TTL
    P:runs                zset    run id -> created_at: every run, for `playbooks runs`
    P:runs:active         set     runs queued, running or waiting: what reapers scan
    P:workers             hash    worker id -> JSON heartbeat (host, pid, runs, seen_at)
    P:leases              zset    run id -> when its lease runs out (ms): reapers read only the expired ones
    P:draining:{W}        string  set (TTL 1 h) when worker process W is shutting down: hand its runs off

Celery's own keys (the queue list, `unacked`, bindings) live under the `P-celery:` global key prefix, apart
from these, so kombu's visibility sweep never shares state with another application.
"""

from __future__ import annotations

DEFAULT_PREFIX = "pbw"


def unit_run(unit: str) -> str:
    """The run a unit of execution belongs to: a run id (no `_`), or an agent id ending `_{run_id}`."""
    return unit.rsplit("_", 1)[-1]


def is_agent_unit(unit: str) -> bool:
    return "_" in unit


class Keys:
    """Key names under one prefix.

    What a worker leases, fences and fails over is a *unit*: a whole run, or one agent of a spread run (its
    agent id). `run`, `epoch`, `lease`, `requeue` and `stale` take either, so leases, the reaper and the sweep
    treat both alike; the rest take a run id.
    """

    __slots__ = ("prefix",)

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix

    def _unit(self, unit: str, name: str) -> str:
        if is_agent_unit(unit):
            return f"{self.prefix}:{{{unit_run(unit)}}}:{'unit' if name == 'run' else name}:{unit}"
        return f"{self.prefix}:{{{unit}}}:{name}"

    def run(self, unit: str) -> str:
        return self._unit(unit, "run")

    def epoch(self, unit: str) -> str:
        return self._unit(unit, "epoch")

    def lease(self, unit: str) -> str:
        return self._unit(unit, "lease")

    def units(self, run_id: str) -> str:
        return f"{self.prefix}:{{{run_id}}}:units"

    def mailbox(self, agent_id: str) -> str:
        return f"{self.prefix}:{{{unit_run(agent_id)}}}:mailbox:{agent_id}"

    def agents(self, run_id: str) -> str:
        return f"{self.prefix}:{{{run_id}}}:agents"

    def journal(self, run_id: str, agent_id: str) -> str:
        return f"{self.prefix}:{{{run_id}}}:journal:{agent_id}"

    def journal_pattern(self) -> str:
        return f"{self.prefix}:{{*}}:journal:*"

    def events(self, run_id: str) -> str:
        return f"{self.prefix}:{{{run_id}}}:events"

    def inbox(self, unit: str) -> str:
        # A spread run's agent claims each input it reads from the run's inbox into its own (spread.py).
        return self._unit(unit, "inbox")

    def requeue(self, unit: str) -> str:
        return self._unit(unit, "requeue")

    def stale(self, unit: str) -> str:
        # Apart from `requeue`: a run enqueued again for being stale must fail over as fast as any other
        # if the worker that then takes it dies, not wait out this guard's longer TTL.
        return self._unit(unit, "stale")

    def run_keys(self, run_id: str) -> list[str]:
        """The keys that expire together when a run finishes (journals and agents' keys are listed apart)."""
        return [self.run(run_id), self.epoch(run_id), self.agents(run_id), self.events(run_id), self.inbox(run_id),
                self.units(run_id)]

    def agent_keys(self, agent_id: str) -> list[str]:
        """A spread run's keys of one agent, which expire with the run."""
        return [self.run(agent_id), self.epoch(agent_id), self.mailbox(agent_id), self.inbox(agent_id)]

    @property
    def runs(self) -> str:
        return f"{self.prefix}:runs"

    @property
    def active(self) -> str:
        return f"{self.prefix}:runs:active"

    @property
    def leases(self) -> str:
        return f"{self.prefix}:leases"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    def draining(self, worker_id: str) -> str:
        return f"{self.prefix}:draining:{worker_id}"

    @property
    def celery_prefix(self) -> str:
        return f"{self.prefix}-celery:"
