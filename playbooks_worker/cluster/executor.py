"""Execute runs on a worker: own the run (lease + epoch), replay it from Redis, publish what it says.

Celery never appears here: a task hands `Executor.execute` a run id and gets back what happened. The same
`Runner` attempt loop as local mode does the work; this module supplies ownership (a lease instead of a file
lock), a fenced store, and an IO that turns output and status lines into events on the run's stream.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import redis

from playbooks_worker.checkpoints.redis import RedisCheckpointProvider
from playbooks_worker.checkpoints.signing import load_secret_key
from playbooks_worker.cluster import loops
from playbooks_worker.cluster.connection import redis_client
from playbooks_worker.cluster.failures import store_call, store_calls
from playbooks_worker.cluster.heartbeat import process_alive
from playbooks_worker.cluster.keys import Keys, is_agent_unit
from playbooks_worker.cluster.scripts import Scripts
from playbooks_worker.cluster.store import NotRunnable, Ownership, RedisRunStore
from playbooks_worker.config import Settings
from playbooks_worker.errors import Fenced, InputUnavailable, PlaybooksError, RunNotFound, StoreUnavailable
from playbooks_worker.messages import failure_lines, found_checkpoint_lines, no_checkpoints_line, resumed_line
from playbooks_worker.program import parse_sources
from playbooks_worker.program.model import Program
from playbooks_worker.runner import Runner, RunOutcome, in_creation_order
from playbooks_worker.runs import RunRecord
from playbooks_worker.runtime.engine import Runtime

log = logging.getLogger("playbooks_worker.cluster")


class ClusterIO:
    """Output and the guide's status lines become events on the run's stream; input comes from its inbox."""

    def __init__(self, client: Any, keys: Keys, run_id: str) -> None:
        self.client = client
        self.keys = keys
        self.run_id = run_id
        self.found: set[str] = set()

    @store_call
    def publish(self, event: dict[str, Any]) -> None:
        self.client.xadd(self.keys.events(self.run_id), {"event": json.dumps(event, default=str)})

    def status(self, text: str) -> None:
        self.publish({"type": "status", "text": text})

    notice = status

    def deliver(self, event: dict[str, Any]) -> None:
        self.publish(event)  # only for stores that cannot publish with the checkpoint

    async def read_input(self, agent: Any) -> str:
        # Peek, do not pop: the input leaf's checkpoint pops it in the same atomic write (consume_input),
        # so a crash in between neither loses the answer nor uses it twice.
        with store_calls():
            text = self.client.lindex(self.keys.inbox(self.run_id), 0)
        if text is None:
            raise InputUnavailable("the run waits for input from user",
                                   hint=f"answer with: playbooks send {self.run_id} 'your answer'")
        return text.decode() if isinstance(text, bytes) else str(text)

    def found_checkpoint(self, agent_id: str, record: dict[str, Any]) -> None:
        self.found.add(agent_id)
        for line in found_checkpoint_lines(agent_id, record):
            self.status(line)

    def no_checkpoints(self, agent_id: str) -> None:
        self.status(no_checkpoints_line(agent_id))

    def on_resumed(self, agent: Any) -> None:
        if agent.id in self.found:
            self.found.discard(agent.id)
            self.status(resumed_line(agent.id))

    def on_checkpoint(self, agent: Any, record: dict[str, Any], replayed: bool) -> None:
        pass


def end_event(outcome: RunOutcome, program: Program | None, owner: str) -> dict[str, Any] | None:
    """The event announcing how an attempt ended, published with the record that says so (store.save)."""
    run, status = outcome.run, outcome.status
    if status == "succeeded":
        return {"type": "end", "state": "succeeded", "lines": ["Execution complete ✅"]}
    if status == "failed":
        return {"type": "end", "state": "failed",
                "lines": failure_lines(outcome.error, program.sources if program else {}),
                "hint": f"fix the program, then: playbooks run {run.program_display} --resume"}
    if status == "waiting":
        return {"type": "end", "state": "waiting", "lines": ["⏸️  The run is waiting for input from user"],
                "hint": f"answer with: playbooks send {run.run_id} 'your answer'"}
    if status == "cancelled":
        return {"type": "end", "state": "cancelled", "lines": ["⏹️  Run cancelled"]}
    if status == "handed_off":
        return {"type": "status", "text": f"↪️  Worker {owner} is shutting down: the run continues on another worker"}
    return None  # interrupted: the run stays running, for the reaper to hand on


class ClusterRunner(Runner):
    """A run's attempts on a worker. Starting costs one write, the lease's (store.acquire: the record with the
    attempt begun, the status line naming the worker, the run's agents back), and ending one more, the record's
    (store.save: the final state, the event announcing it, the keys' expiry, the lease released)."""

    owning_saves_attempt = True

    def __init__(self, settings: Settings, reporter: ClusterIO, provider: RedisCheckpointProvider,
                 store: RedisRunStore, program: Program) -> None:
        super().__init__(settings, reporter, provider, store)
        self.store = store
        self.io = reporter
        self.program = program
        self.ownership: Ownership | None = None
        self._indexed: set[str] | None = None  # the run's agents as indexed when it was taken, for its first load

    @contextlib.contextmanager
    def _owned(self, run: RunRecord) -> Iterator[RedisCheckpointProvider]:
        run.worker = self.store.owner
        status = {"type": "status", "text": f"▶️  Running on worker {self.store.owner} (epoch {{epoch}})"}
        with self.store.lock(run.run_id, record=run, event=status) as ownership:
            self.ownership = ownership
            self._indexed = set(ownership.agents or ())
            assert isinstance(self.provider, RedisCheckpointProvider)
            yield self.provider.fenced(ownership.epoch)

    def agent_ids(self, run_id: str) -> list[str]:
        indexed, self._indexed = self._indexed, None
        if indexed is not None and self.ownership is not None and self.ownership.run_id == run_id:
            # Nothing but this owner has written the index since it was read with the lease; later loads (after
            # a divergence) read it again.
            return in_creation_order(run_id, indexed)
        return super().agent_ids(run_id)

    def _add_agent(self, run: RunRecord, agent_id: str, klass: str, save: bool = True) -> None:
        if self.ownership is not None and self.ownership.agents is not None:
            # Its journal expires with the run (store.save), even if a later attempt no longer creates it.
            self.ownership.agents.add(agent_id)
        super()._add_agent(run, agent_id, klass, save)

    def _started(self, run: RunRecord, runtime: Runtime) -> None:
        def stop(reason: Any) -> None:
            runtime.stop_reason = reason

        assert self.ownership is not None
        self.ownership.stop = stop
        if Executor.draining.is_set():
            from playbooks_worker.errors import Handoff

            runtime.stop_reason = Handoff

    def _prune(self, finished: RunRecord) -> None:
        """Finished runs in Redis expire after [cluster] finished_ttl_s instead: finding the program's older
        runs after every success would cost more than a short run itself."""

    def _save(self, run: RunRecord, outcome: RunOutcome | None = None) -> None:
        try:
            self.store.save(run, event=None if outcome is None else end_event(outcome, self.program,
                                                                               self.store.owner))
        except Fenced as exc:
            self.fenced = exc
            log.warning("run %s: not saved, another worker owns it now", run.run_id)

    async def execute(self, program: Program, run: RunRecord) -> RunOutcome:
        self.fenced: Fenced | None = None
        cutoff = run.failed_seq - 1 if run.failed_seq else None
        outcome = await self._execute(program, run, cutoff=cutoff, changed=run.program_digest != program.digest)
        if self.fenced is not None and outcome.status != "fenced":
            # Taken over after its last checkpoint but before it recorded how the attempt ended: the run is
            # the new owner's now, and so is announcing its end (else the stream would end twice).
            return RunOutcome(run, "fenced", error=self.fenced)
        return outcome


class Executor:
    """One per worker process. Thread-safe: the threads pool runs many runs on it at once."""

    draining = threading.Event()  # set when this process is shutting down: hand runs off
    _instance: Executor | None = None
    _instance_lock = threading.Lock()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = redis_client(settings)
        self.keys = Keys(settings.cluster.key_prefix)
        scripts = Scripts(self.client)
        self.store = RedisRunStore(self.client, keys=self.keys, lease_seconds=settings.cluster.lease_seconds,
                                   finished_ttl_s=settings.cluster.finished_ttl_s, enqueue=self.enqueue,
                                   scripts=scripts)
        self.provider = RedisCheckpointProvider(self.client, prefix=self.keys.prefix,
                                                max_size_mb=settings.durability.max_checkpoint_size_mb,
                                                secret_key=load_secret_key(create=False), scripts=scripts)
        self._programs: OrderedDict[str, Program] = OrderedDict()
        self._programs_lock = threading.Lock()

    @classmethod
    def get(cls, settings: Settings | None = None) -> Executor:
        with cls._instance_lock:
            if cls._instance is None or cls._instance_pid != os.getpid():
                from playbooks_worker.config import load_settings

                cls._instance = cls(settings or load_settings())
                cls._instance_pid = os.getpid()
                from playbooks_worker.cluster.heartbeat import start_background

                start_background(cls._instance)
            return cls._instance

    _instance_pid = -1

    def enqueue(self, run_id: str) -> None:
        from playbooks_worker.cluster.app import enqueue_run

        enqueue_run(run_id, self.settings)

    def program(self, run: RunRecord) -> Program:
        key = f"{run.program_digest}:{hash(frozenset(run.sources.items()))}"
        with self._programs_lock:
            if key in self._programs:
                self._programs.move_to_end(key)
                return self._programs[key]
        # Named by its absolute path, not as the user typed it on the client (`blah.pb`): code is compiled under
        # its name resolved against the cwd, and this worker's cwd is not the client's. Named `blah.pb`, no
        # frame would map back to the program: checkpoints would record no statement and no line.
        program = parse_sources(run.program, run.sources, run.program)
        with self._programs_lock:
            self._programs[key] = program
            while len(self._programs) > 64:
                self._programs.popitem(last=False)
        return program

    def execute(self, run_id: str) -> str:
        """Run (or continue) `run_id` here — or, given an agent id, that agent of a spread run; returns what
        happened, for the task's log line."""
        from playbooks_worker.cluster import spread

        if is_agent_unit(run_id):
            return spread.AgentTask(self, run_id).execute()
        try:
            run = self.store.get(run_id)
        except RunNotFound:
            return "dropped: no such run"
        if run.state not in ("queued", "running"):
            return f"dropped: run is {run.state}"
        io = ClusterIO(self.client, self.keys, run_id)
        program = None
        try:
            program = self.program(run)
            # Decided at a run's first execution: a run begun with its agents together stays so (its messages
            # are in its journals, not in mailbox streams).
            if run.spread or (not run.attempts and run.parent is None and self.settings.cluster.spread_agents
                              and spread.should_spread(program)):
                return spread.start(self, run, program, io)
            runner = ClusterRunner(self.settings, io, self.provider, self.store, program)
            outcome = loops.run(runner.execute(program, run))
        except NotRunnable as exc:
            if not self._take_from_dead_local_holder(run_id):
                return f"dropped: {exc.message}"
            return self.execute(run_id)
        except PlaybooksError as exc:
            self._fail_unowned(run_id, exc)
            io.publish({"type": "end", "state": "failed", "lines": [f"❌ {exc.message}"], "hint": exc.hint})
            return "failed"
        except redis.RedisError:
            raise  # Redis down or cut off: the lease lapses and a reaper re-enqueues the run once it is back
        except StoreUnavailable as exc:
            raise exc.cause from None  # the same, met mid-run; Celery wants an Exception
        except Exception as exc:
            # Not the program's failure (the runner records those): a fault of this runtime. Ending the run is
            # better than the reaper handing it back to the same fault every few seconds.
            log.exception("run %s: internal error", run_id)
            fault = PlaybooksError(f"internal error in playbooks-worker: {type(exc).__name__}: {exc}",
                                   hint="please report it with the worker's log")
            self._fail_unowned(run_id, fault)
            io.publish({"type": "end", "state": "failed", "lines": [f"❌ {fault.message}"], "hint": fault.hint})
            return "failed"
        return outcome.status  # announced by the runner's last write (end_event)

    def _fail_unowned(self, run_id: str, exc: PlaybooksError) -> None:
        """A run refused before it could start (bad [llm] settings, a program that no longer parses)."""
        try:
            run = self.store.get(run_id)
            if run.state in ("queued", "running") and run_id not in self.store.owned:
                run.state, run.error = "failed", exc.message
                self.store.save(run)
        except (PlaybooksError, Fenced):
            pass

    def _take_from_dead_local_holder(self, run_id: str) -> bool:
        """The lease belongs to a process on this host that is gone (a killed pool process): expire it now."""
        holder = self.client.get(self.keys.lease(run_id))
        if holder is None:
            return False
        owner = holder.decode().split(" ")[0]
        host, _, pid = owner.rpartition(":")
        if host != self.store.owner.rpartition(":")[0] or not pid.isdigit() or process_alive(int(pid)):
            return False
        from playbooks_worker.cluster.heartbeat import reap_one

        return reap_one(self, run_id, expected_lease=holder.decode(), enqueue=False)
