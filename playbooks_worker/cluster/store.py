"""Run records, leases and fencing epochs in Redis (DESIGN §5).

A worker *owns* a run while it holds the run's lease: a key with a TTL that its heartbeat renews. Taking a
run (first start, or over from a dead worker) increments the run's epoch; every checkpoint and every run-record
write checks that epoch atomically, so a worker that lost its lease — paused, partitioned, presumed dead — can
never write again: its next write raises `Fenced` and it stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis

from playbooks_worker import metrics
from playbooks_worker.cluster.keys import Keys, unit_run
from playbooks_worker.cluster.scripts import Scripts
from playbooks_worker.errors import Fenced, RunLocked, RunNotFound
from playbooks_worker.runs import FINISHED, RunRecord


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _record_json(run: RunRecord) -> str:
    """The record without its program sources: those are written once, at creation, in their own field."""
    return json.dumps(run.to_json(sources=False), default=repr)


class NotRunnable(RunLocked):
    """A task for a run this worker must not execute: finished, waiting, or held by a live lease."""


@dataclass
class Ownership:
    run_id: str
    epoch: int
    lease_value: str
    stop: Callable[[Callable[[], BaseException]], None] | None = None  # tells the run to stop at its next await
    # A run owned by its own task: its agent ids as indexed when it was taken, plus those its runner added since.
    # Only the owner writes journals (fenced), so this is the index without reading it again (store.save).
    agents: set[str] | None = None


class RedisRunStore:
    def __init__(self, client: redis.Redis, *, keys: Keys, lease_seconds: float, finished_ttl_s: float,
                 enqueue: Callable[[str], None] | None = None, scripts: Scripts | None = None) -> None:
        self.client = client
        self.keys = keys
        self.lease_ms = max(1, round(lease_seconds * 1000))
        self.finished_ttl_ms = round(finished_ttl_s * 1000)
        self.enqueue = enqueue
        self.scripts = scripts or Scripts(client)
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.owned: dict[str, Ownership] = {}

    # -- records ---------------------------------------------------------------------------------------

    def create(self, run: RunRecord) -> bool:
        """Store a new run as queued. Idempotent: False when a run with that id exists already."""
        k = self.keys
        created = self.client.hsetnx(k.run(run.run_id), "state", run.state)
        if not created:
            return False
        seconds, micros = self.client.time()
        pipe = self.client.pipeline()
        pipe.hset(k.run(run.run_id), mapping={"json": _record_json(run), "sources": json.dumps(run.sources),
                                              "queued_at": seconds * 1000 + micros // 1000})
        pipe.zadd(k.runs, {run.run_id: run.created_at})
        pipe.sadd(k.active, run.run_id)
        pipe.execute()
        return True

    def get(self, run_id: str) -> RunRecord:
        fields = self.client.hgetall(self.keys.run(run_id))
        if not fields or b"json" not in fields:
            raise RunNotFound(f"no run {run_id!r} in Redis (prefix {self.keys.prefix!r})",
                              hint="'playbooks runs' lists the runs; finished runs expire after [cluster] "
                                   "finished_ttl_s")
        run = RunRecord.from_json(json.loads(fields[b"json"]))
        if b"sources" in fields:
            run.sources = json.loads(fields[b"sources"])
        run.state = _text(fields.get(b"state", run.state.encode()))
        run.failovers = int(fields.get(b"failovers", 0))
        run.spread = fields.get(b"spread") == b"1"
        return run

    def set_sources(self, run_id: str, sources: dict[str, str]) -> None:
        self.client.hset(self.keys.run(run_id), "sources", json.dumps(sources))

    def cancel_requested(self, run_id: str) -> bool:
        return bool(self.client.hget(self.keys.run(run_id), "cancel"))

    def save(self, run: RunRecord, *, event: dict[str, Any] | None = None) -> None:
        """Write the record as the run's owner (fenced), or as its creator when nobody owns it. `event` (how an
        attempt ended) is published in the same atomic write: it exists exactly when the state it announces does."""
        run.updated_at = time.time()
        owned = self.owned.get(run.run_id)
        k, run_id = self.keys, run.run_id
        finished = run.state in FINISHED or run.state == "failed"
        keys = [k.run(run_id), k.epoch(run_id), k.lease(run_id), k.inbox(run_id)]
        if finished or event is not None:
            keys.append(k.events(run_id))
        if finished:
            # Everything of a finished run expires together; agents are listed from the index (the record may
            # not know an agent created just before a crash). Only a spread run's agents have keys of their own.
            keys += [k.agents(run_id), k.units(run_id),
                     *(key for a in self._agents(run, owned)
                       for key in (k.journal(run_id, a), *(k.agent_keys(a) if run.spread else ())))]
        args = ["" if owned is None else str(owned.epoch), _record_json(run), run.state,
                str(self.finished_ttl_ms if finished else 0), "0" if run.state == "running" else "1",
                "" if event is None else json.dumps(event, default=str)]
        pipe = self.client.pipeline(transaction=False)
        self.scripts.queue(pipe, self.scripts.save_run, keys, args)
        if run.state != "running":
            # The indexes live in other slots, so not in the script: sent in the same round trip, and put back
            # below if the write was refused.
            if finished:
                pipe.srem(k.active, run_id)
            pipe.zrem(k.leases, run_id)
        result = self.scripts.reply(pipe.execute(raise_on_error=False)[0], self.scripts.save_run, keys, args)
        if result == -1:
            if run.state != "running":
                self._watch_again(run_id)
            metrics.fenced_writes.inc()
            raise Fenced(run_id, owned.epoch if owned else 0)
        if result == -2:
            # It was about to wait for input, but input had arrived: run it again instead.
            run.state = "queued"
            self.save(run)
            return
        if run.state != "running" and owned is not None:
            self.owned.pop(run_id, None)
        if run.state == "queued" and self.enqueue is not None:
            self.enqueue(run_id)

    def _watch_again(self, run_id: str) -> None:
        """A refused write took the run out of the indexes the reapers read: put it back while it is unfinished.
        Its deadline is now: the reaper looks at it at once, sees the new owner's lease, and keeps it until that
        owner's heartbeat moves the deadline on."""
        if _text(self.client.hget(self.keys.run(run_id), "state")) in ("queued", "running", "waiting"):
            pipe = self.client.pipeline(transaction=False)
            pipe.sadd(self.keys.active, run_id)
            pipe.zadd(self.keys.leases, {run_id: round(time.time() * 1000)}, gt=True)
            pipe.execute()

    def _agents(self, run: RunRecord, owned: Ownership | None = None) -> set[str]:
        known = {a["agent_id"] for a in run.agents}
        if owned is not None and owned.agents is not None:
            return known | owned.agents
        pipe = self.client.pipeline(transaction=False)
        pipe.smembers(self.keys.agents(run.run_id))
        pipe.smembers(self.keys.units(run.run_id))
        return known | {_text(a) for members in pipe.execute() for a in members}

    def _all_keys(self, run: RunRecord) -> list[str]:
        k = self.keys
        return [*k.run_keys(run.run_id),
                *(key for a in self._agents(run) for key in (k.journal(run.run_id, a), *k.agent_keys(a)))]

    def revive(self, run: RunRecord) -> None:
        """A failed run is resumed: the reapers watch it again, and its keys no longer expire."""
        pipe = self.client.pipeline(transaction=False)
        for key in self._all_keys(run):
            pipe.persist(key)
        pipe.sadd(self.keys.active, run.run_id)
        pipe.execute()

    def expire(self, run: RunRecord) -> None:
        """A run ended outside its owner's last write (cancelled while nobody ran it): its keys expire."""
        pipe = self.client.pipeline(transaction=False)
        for key in self._all_keys(run):
            pipe.pexpire(key, self.finished_ttl_ms)
        pipe.srem(self.keys.active, run.run_id)
        pipe.zrem(self.keys.leases, run.run_id)
        pipe.execute()

    def list(self, limit: int = 200) -> list[RunRecord]:
        ids = [_text(r) for r in self.client.zrevrange(self.keys.runs, 0, limit - 1)]
        runs = []
        for run_id in ids:
            try:
                runs.append(self.get(run_id))
            except RunNotFound:
                self.client.zrem(self.keys.runs, run_id)  # expired with its TTL
        return runs

    def delete(self, run_id: str) -> None:
        k = self.keys
        agents = {_text(a) for a in self.client.smembers(k.agents(run_id))}
        agents |= {_text(a) for a in self.client.smembers(k.units(run_id))}
        self.client.delete(*k.run_keys(run_id), k.lease(run_id),
                           *(key for a in agents for key in (k.journal(run_id, a), *k.agent_keys(a), k.lease(a))))
        self.client.zrem(k.runs, run_id)
        self.client.srem(k.active, run_id)

    # -- ownership -------------------------------------------------------------------------------------

    def acquire(self, run_id: str, *, record: RunRecord | None = None,
                event: dict[str, Any] | None = None) -> Ownership:
        """Own a unit: a run, or one agent of a spread run (an agent id).

        With `record` (a run's own task starting an attempt: the record with the attempt begun), the record is
        written and `event` published in the same atomic step, and the ownership knows the run's agents."""
        k = self.keys
        keys = [k.run(run_id), k.epoch(run_id), k.lease(run_id), k.run(unit_run(run_id))]
        args: list[Any] = [self.owner, self.lease_ms]
        if record is not None:
            keys += [k.events(run_id), k.agents(run_id), k.units(run_id)]
            args += [_record_json(record), "" if event is None else json.dumps(event, default=str)]
        pipe = self.client.pipeline(transaction=False)
        self.scripts.queue(pipe, self.scripts.acquire, keys, args)
        # Advisory, and harmless when the acquisition failed: the reapers check the lease key itself.
        pipe.zadd(k.leases, {run_id: self._deadline_ms()}, gt=True)
        reply = self.scripts.reply(pipe.execute(raise_on_error=False)[0], self.scripts.acquire, keys, args)
        code = int(reply[0])
        if code == -3:
            raise RunNotFound(f"no run {run_id!r} in Redis")
        if code == -2:
            raise NotRunnable(f"run {run_id} is {_text(reply[1])}: nothing to execute")
        if code == -1:
            raise NotRunnable(f"run {run_id} is held by {_text(reply[1])} (a live lease)")
        ownership = Ownership(run_id, code, f"{self.owner} {code}")
        if record is not None:
            ownership.agents = {_text(a) for ids in reply[1:] for a in ids}
        self.owned[run_id] = ownership
        return ownership

    def _deadline_ms(self) -> int:
        return round(time.time() * 1000) + self.lease_ms

    def release(self, run_id: str) -> None:
        ownership = self.owned.pop(run_id, None)
        if ownership is not None:
            self.scripts.release(keys=[self.keys.lease(run_id)], args=[ownership.lease_value])

    @contextlib.contextmanager
    def lock(self, run_id: str, *, record: RunRecord | None = None,
             event: dict[str, Any] | None = None) -> Iterator[Ownership]:
        ownership = self.acquire(run_id, record=record, event=event)
        try:
            yield ownership
        finally:
            self.release(run_id)

    def renew_all(self) -> None:
        """One heartbeat: renew every lease this process holds; stop runs that lost theirs or were cancelled."""
        owned = list(self.owned.values())
        if not owned:
            return
        pipe = self.client.pipeline(transaction=False)
        for ownership in owned:
            self.scripts.renew(keys=[self.keys.lease(ownership.run_id), self.keys.run(unit_run(ownership.run_id))],
                               args=[ownership.lease_value, self.lease_ms], client=pipe)
        # The reapers' index of deadlines: advisory (the lease key's TTL decides), so not in the script,
        # whose keys must share the run's slot.
        pipe.zadd(self.keys.leases, {o.run_id: self._deadline_ms() for o in owned})
        replies = pipe.execute(raise_on_error=False)[: len(owned)]
        for ownership, reply in zip(owned, replies, strict=True):
            if isinstance(reply, Exception) or ownership.stop is None:
                continue
            if int(reply[0]) == 0:
                run_id, epoch = ownership.run_id, ownership.epoch
                ownership.stop(lambda r=run_id, e=epoch: Fenced(r, e))
            elif reply[1] or _text(reply[2]) in FINISHED or _text(reply[2]) == "failed":
                # Cancelled, or a spread run that another of its agents ended (EndProgram, a failure).
                from playbooks_worker.errors import Cancelled

                ownership.stop(Cancelled)
