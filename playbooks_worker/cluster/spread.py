"""Spread runs: each agent of a multi-agent program is its own task, on any worker (DESIGN §5).

A spread run's agents are *units*, leased, fenced and failed over like a run (keys.py): `P:{R}:unit:{A}` holds
an agent's state — queued, running, waiting (for a message, or for user input), done, failed. The run's own
task only creates the entry agents' units and later wakes agents (input arrived, `--resume`).

- A message is an entry of the recipient's mailbox stream, added in the same atomic write as the sender's
  checkpoint (`APPEND_WITH_EFFECTS`); a recipient parked waiting is made queued in that write too, and the
  sender enqueues it. A receive is the receiver's checkpoint; what it took is in its journal, so a receiver
  that crashed before recording a message finds it again in its stream: nothing lost, nothing twice.
- An agent waiting for a message reads its stream for `message_linger_s`, then *parks*: its task ends and its
  worker is free. Parking checks atomically that nothing arrived since it last read (`PARK`), and whether the
  whole run is now quiescent — every agent done, or waiting for a message nobody can send — which ends it.
- EndProgram, or an agent's failure, ends the run at once; the other agents' heartbeats see it and stop.
"""

from __future__ import annotations

import ast
import asyncio
import itertools
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import redis

from playbooks_worker import logs
from playbooks_worker.checkpoints.provider import parse_record_id
from playbooks_worker.cluster import loops
from playbooks_worker.cluster.executor import ClusterIO, end_event
from playbooks_worker.cluster.failures import store_call, store_calls
from playbooks_worker.cluster.keys import unit_run
from playbooks_worker.cluster.store import NotRunnable, Ownership
from playbooks_worker.errors import (
    Cancelled,
    Divergence,
    Fenced,
    Handoff,
    InputUnavailable,
    NonDeterminismError,
    Parked,
    PlaybooksError,
    ProgramEnd,
    RunNotFound,
    StoreUnavailable,
)
from playbooks_worker.program.model import Program
from playbooks_worker.runner import RunOutcome, _failing_checkpoint, in_creation_order
from playbooks_worker.runs import RunRecord
from playbooks_worker.runtime.engine import AgentJournal, Runtime, agent_id_for
from playbooks_worker.runtime.mailbox import agent_spec, matches

if TYPE_CHECKING:
    from playbooks_worker.cluster.executor import Executor
    from playbooks_worker.runtime.agent import Agent

log = logging.getLogger("playbooks_worker.cluster")

_SELF_NAMES = frozenset({"self", "agent"})


def should_spread(program: Program) -> bool:
    """Whether the run's agents may each be a task of their own: a multi-agent program whose agents only
    talk by messages. A program whose code calls another agent's playbooks (`await other.GetTaxRate()`) or
    reads its state, or whose LLM playbooks might, keeps its agents in one task, where such a call is a leaf
    of the caller."""
    agents = [a for a in program.agents if a.kind == "AI"]
    if len(agents) < 2:
        return False
    for agent in agents:
        foreign = set().union(*(set(a.playbooks) for a in agents if a is not agent))
        for playbook in agent.playbooks.values():
            if playbook.kind == "llm" or playbook.public:
                return False
        blocks = [b.code for b in agent.code_blocks] + [p.code.code for p in agent.playbooks.values() if p.code]
        for code in blocks:
            if _calls_foreign(code, foreign):
                return False
    return True


def _calls_foreign(code: str, foreign: set[str]) -> bool:
    try:
        tree = compile(code, "<program>", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                       dont_inherit=True)
    except SyntaxError:
        return True  # the run reports it; it must not be spread on a guess
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or (isinstance(node.value, ast.Name) and node.value.id in _SELF_NAMES):
            continue
        if node.attr == "state" or node.attr in foreign:  # another agent's state, or a call of its playbook
            return True
    return False


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def start(executor: Executor, run: RunRecord, program: Program, io: ClusterIO) -> str:
    """The run's own task: create its entry agents (first time), or wake its agents (input, resume).

    Idempotent: a worker that dies in here leaves the run `starting` with no lease, and the sweep enqueues
    this task again."""
    from playbooks_worker.llm.provider import require_llm

    require_llm(program, executor.settings)
    store, client, k, run_id = executor.store, executor.client, executor.keys, run.run_id
    try:
        store.acquire(run_id)
    except NotRunnable as exc:
        return f"dropped: {exc.message}"
    wake: list[str] = []
    try:
        client.hset(k.run(run_id), "starting", "1")
        if not run.spread:
            entries: dict[str, None] = {}
            for definition, _ in program.entry_points():
                entries.setdefault(definition.name)
            now_ms = _now_ms(client)
            pipe = client.pipeline(transaction=True)  # one slot: the run's hash tag
            for index, klass in enumerate(entries, start=1):
                agent_id = agent_id_for(klass, index, run_id)
                unit = {"agent_id": agent_id, "klass": klass, "kwargs": {}, "entry": True, "first": index == 1}
                pipe.hsetnx(k.run(agent_id), "state", "queued")
                pipe.hset(k.run(agent_id), mapping={"json": json.dumps(unit), "queued_at": now_ms})
                pipe.sadd(k.units(run_id), agent_id)
                wake.append(agent_id)
                run.agents.append({"agent_id": agent_id, "klass": klass})
            pipe.hset(k.run(run_id), mapping={"agent_index": len(entries), "spread": "1"})
            pipe.execute()
            run.spread = True
            io.status(f"▶️  Each agent runs as a task of its own (playbooks status {run_id} shows where)")
        else:
            wake = _wake(executor, run_id)
        run.state, run.error, run.worker = "running", None, None
        set_run(executor, run, "running")
    finally:
        store.release(run_id)
        client.zrem(k.leases, run_id)  # the reapers watch its agents' leases, not the run's
    for agent_id in wake:
        executor.enqueue(agent_id)
    return "spread"


def _now_ms(client: Any) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def _wake(executor: Executor, run_id: str) -> list[str]:
    """Agents to run again: failed ones (a resume), stale queued ones, and as many of those waiting for user
    input as there are inputs (each claims one when it reads: spread.AgentIO)."""
    client, k = executor.client, executor.keys
    client.hdel(k.run(run_id), "ended")
    units = in_creation_order(run_id, (_text(u) for u in client.smembers(k.units(run_id))))
    pipe = client.pipeline(transaction=False)
    for agent_id in units:
        pipe.hmget(k.run(agent_id), "state", "waiting_for", "json")
        pipe.llen(k.inbox(agent_id))
    pipe.llen(k.inbox(run_id))
    *replies, inputs = pipe.execute()
    now_ms = _now_ms(client)
    wake = []
    for i, agent_id in enumerate(units):
        (state, waiting_for, raw), claimed = replies[2 * i], replies[2 * i + 1]
        state = _text(state or b"")
        fields: dict[str, Any] = {"state": "queued", "queued_at": now_ms}
        if state == "failed":
            unit = json.loads(raw)
            unit.pop("failed", None)
            fields["json"] = json.dumps(unit)
        elif state == "waiting" and _text(waiting_for or b"") == "user" and (claimed or inputs):
            inputs -= 0 if claimed else 1
        elif state != "queued":
            continue
        client.hset(k.run(agent_id), mapping=fields)
        wake.append(agent_id)
    return wake


def set_run(executor: Executor, run: RunRecord, state: str, event: dict[str, Any] | None = None) -> int:
    """Write a spread run's state and record unless it has ended (SET_SPREAD_RUN); a final state expires the
    run's keys and leaves the indexes. Returns the script's code."""
    client, k, run_id = executor.client, executor.keys, run.run_id
    final = state in ("succeeded", "failed", "cancelled")
    run.state = state
    run.updated_at = time.time()
    extra: list[str] = []
    if final:
        agents = {_text(a) for members in (client.smembers(k.units(run_id)), client.smembers(k.agents(run_id)))
                  for a in members}
        extra = [k.epoch(run_id), k.agents(run_id), k.units(run_id),
                 *(key for a in agents for key in (k.journal(run_id, a), *k.agent_keys(a)))]
    code = int(executor.store.scripts.set_spread_run(
        keys=[k.run(run_id), k.events(run_id), k.inbox(run_id), *extra],
        args=[state, json.dumps(run.to_json(sources=False), default=repr),
              "" if event is None else json.dumps(event, default=str),
              str(round(executor.settings.cluster.finished_ttl_s * 1000)) if final else "0"]))
    if code == 1 and final:
        pipe = client.pipeline(transaction=False)
        pipe.srem(k.active, run_id)
        pipe.zrem(k.leases, run_id)
        pipe.execute()
    return code


def finish_run(executor: Executor, run_id: str, state: str | None = None,
               error: BaseException | str | None = None, *, result_of: dict[str, Any] | None = None) -> bool:
    """End a spread run: its state (given, or what its agents say: failed when one failed), result, agents,
    and its `end` event, in one check-and-set: whoever ends a run first — the agent that ended it, or a
    sweep after that agent died — is the only one. True when this call ended it."""
    client, k = executor.client, executor.keys
    run = executor.store.get(run_id)
    if run.state in ("succeeded", "failed", "cancelled"):
        return False
    units = in_creation_order(run_id, (_text(u) for u in client.smembers(k.units(run_id))))
    pipe = client.pipeline(transaction=False)
    for agent_id in units:
        pipe.hmget(k.run(agent_id), "json", "state")
    infos = []
    for raw, unit_state in pipe.execute():
        if raw:
            info = json.loads(raw)
            info["_state"] = _text(unit_state or b"")
            infos.append(info)
    if result_of is not None:
        infos = [result_of if i["agent_id"] == result_of["agent_id"] else i for i in infos]
    failed = next((i for i in infos if i.get("_state") == "failed" or i.get("failed")), None)
    if state is None:
        state = "failed" if failed is not None else "succeeded"
    if state == "failed" and error is None:
        error = failed.get("failed", "an agent failed") if failed else "an agent failed"
    run.agents = [{"agent_id": i["agent_id"], "klass": i["klass"]} for i in infos]
    first = next((i for i in infos if i.get("first")), None)
    run.result = first.get("result") if first else None
    run.worker = None
    run.error = None if error is None else (f"{type(error).__name__}: {error}"
                                             if isinstance(error, BaseException) else str(error))
    run.state = state
    program = executor.program(run) if state == "failed" else None
    return set_run(executor, run, state, end_event(RunOutcome(run, state, error=error), program, "")) == 1


class SpreadPeers:
    """The runtime's view of the run's other agents, and this agent's mailbox stream."""

    def __init__(self, task: AgentTask, taken: set[str]) -> None:
        self.task = task
        self.client = task.executor.client
        self.keys = task.executor.keys
        self.run_id = task.run_id
        self.directory: dict[str, str] = {}  # agent id -> class
        self.pending: list[dict[str, str]] = []  # read from the stream, not yet taken
        self.last_id = "0-0"
        self.read_once = False
        self.shown_waiting = False  # `waiting_for` set on the unit while this task waits holding its worker
        self.taken = taken  # message ids this agent's journal records as received
        self.seen: set[str] = set()  # message ids read from the stream by this task

    @store_call
    def _refresh(self) -> None:
        units = [_text(u) for u in self.client.smembers(self.keys.units(self.run_id))]
        pipe = self.client.pipeline(transaction=False)
        for agent_id in units:
            pipe.hget(self.keys.run(agent_id), "json")
        for agent_id, raw in zip(units, pipe.execute(), strict=True):
            if raw:
                self.directory[agent_id] = json.loads(raw)["klass"]

    def _lookup(self, spec: str) -> tuple[str, str] | None:
        if spec in self.directory:
            return spec, self.directory[spec]
        of_class = in_creation_order(self.run_id, (a for a, klass in self.directory.items() if klass == spec))
        return (of_class[0], spec) if of_class else None

    def resolve(self, target: str) -> tuple[str, str]:
        spec = agent_spec(target)
        found = self._lookup(spec)
        if found is None:
            self._refresh()
            found = self._lookup(spec)
        if found is None:
            raise PlaybooksError(f"no agent {target!r} in this run (agents: {', '.join(sorted(self.directory))})")
        return found

    def find(self, klass: str) -> str | None:
        self._refresh()
        found = self._lookup(klass)
        return found[0] if found else None

    @store_call
    def new_agent_id(self, klass: str) -> str:
        # Allocated before the creating call is recorded: a crash in between leaves a gap in the numbering,
        # never two agents with one id.
        index = self.client.hincrby(self.keys.run(self.run_id), "agent_index", 1)
        return agent_id_for(klass, int(index), self.run_id)

    @store_call
    def claim(self, klass: str) -> str:
        candidate = self.new_agent_id(klass)
        self.client.hsetnx(self.keys.run(self.run_id), f"singleton:{klass}", candidate)
        return _text(self.client.hget(self.keys.run(self.run_id), f"singleton:{klass}"))

    async def receive(self, agent: Agent, source: str) -> dict[str, str]:
        with store_calls():
            return await self._receive(agent, source)

    async def _receive(self, agent: Agent, source: str) -> dict[str, str]:
        linger = self.task.executor.settings.cluster.message_linger_s
        deadline = time.monotonic() + linger
        mailbox = self.keys.mailbox(agent.id)
        while True:
            for i, message in enumerate(self.pending):
                if matches(message, source):
                    del self.pending[i]
                    self.taken.add(message["id"])
                    if self.shown_waiting:
                        self.shown_waiting = False
                        self.client.hset(self.keys.run(agent.id), "waiting_for", "")
                    return message
            runtime = agent.runtime
            if runtime.stop_reason is not None:
                raise runtime.stop_reason()
            remaining = deadline - time.monotonic()
            if remaining <= 0 and self.read_once:
                if self.task.park("waiting", source.strip() or "*", self.last_id) != 0:
                    raise Parked(source)
                deadline = time.monotonic() + linger  # something arrived while parking: read it
                remaining = linger
            block_ms = max(1, round(min(max(remaining, 0), 0.25) * 1000))
            if len(asyncio.all_tasks()) <= 1:
                # The agent's only task: blocking the loop blocks nothing else, and skips a thread hop that
                # costs more than the read (bench/agent_messaging.py).
                reply = self.client.xread({mailbox: self.last_id}, count=100, block=block_ms)
            else:
                reply = await asyncio.to_thread(self.client.xread, {mailbox: self.last_id}, count=100,
                                                block=block_ms)
            if not reply and not self.shown_waiting:
                # Waiting longer than a conversation's turn: let `status` say for what (not on every
                # receive: that write would cost a round trip per message).
                self.shown_waiting = True
                self.client.hset(self.keys.run(agent.id), "waiting_for", source.strip() or "*")
            self.read_once = True
            for _stream, entries in reply or ():
                for entry_id, fields in entries:
                    self.last_id = _text(entry_id)
                    message = json.loads(fields[b"message"])
                    # A send re-run after its record was skipped (a resumed failure) adds the same message
                    # again: its id says so.
                    if message["id"] not in self.taken and message["id"] not in self.seen:
                        self.seen.add(message["id"])
                        self.pending.append(message)


class AgentTask:
    """One task of one agent of a spread run: own it, replay its journal, run it until it parks or ends."""

    def __init__(self, executor: Executor, agent_id: str) -> None:
        self.executor = executor
        self.agent_id = agent_id
        self.run_id = unit_run(agent_id)
        self.ownership: Ownership | None = None
        self.runtime: Runtime | None = None
        self.unit: dict[str, Any] = {}

    def execute(self) -> str:
        executor, store = self.executor, self.executor.store
        try:
            run = store.get(self.run_id)
        except RunNotFound:
            return "dropped: no such run"
        if run.state not in ("queued", "running", "waiting"):
            return f"dropped: run is {run.state}"
        try:
            self.ownership = store.acquire(self.agent_id)
        except NotRunnable as exc:
            if not executor._take_from_dead_local_holder(self.agent_id):
                return f"dropped: {exc.message}"
            return self.execute()
        try:
            return self._run(run)
        except redis.RedisError:
            raise  # Redis down or cut off: the lease lapses and a reaper re-enqueues the agent once it is back
        except StoreUnavailable as exc:
            raise exc.cause from None  # the same, met inside the program; Celery wants an Exception
        except Exception as exc:
            # Not the program's failure (the runtime's outcomes are handled in _run): the program no longer
            # parses, or a fault of this runtime. Ending the run beats failing over into the same fault forever.
            if not isinstance(exc, PlaybooksError):
                log.exception("agent %s: internal error", self.agent_id)
                exc = PlaybooksError(f"internal error in playbooks-worker: {type(exc).__name__}: {exc}",
                                     hint="please report it with the worker's log")
            return self._fail(exc, None)
        finally:
            store.release(self.agent_id)

    def _run(self, run: RunRecord) -> str:
        from playbooks_worker.cluster.executor import Executor

        executor, client, k = self.executor, self.executor.client, self.executor.keys
        assert self.ownership is not None
        logs.bind_run(self.run_id)
        pipe = client.pipeline(transaction=False)
        pipe.hmget(k.run(self.agent_id), "json", "clean")
        pipe.hset(k.run(self.agent_id), mapping={"clean": "0", "waiting_for": ""})
        (raw, clean), _ = pipe.execute()
        self.unit = json.loads(raw)
        announce = clean == b"0"  # its last task ended without parking: a crash or a handoff
        program = executor.program(run)
        io = AgentIO(client, k, self.run_id, self.agent_id)
        provider = executor.provider.fenced(self.ownership.epoch, unit=self.agent_id)
        skip = [tuple(span) for span in self.unit.get("skip", [])]
        while True:
            journal = provider.read_journal_sync(self.agent_id)
            records = [r for r in journal if not any(a <= r["metadata"]["counter"] <= b for a, b in skip)]
            last_counter = journal[-1]["metadata"]["counter"] if journal else 0
            if announce:
                if records:
                    io.found_checkpoint(self.agent_id, records[-1])
                else:
                    io.no_checkpoints(self.agent_id)
            taken = {r["result"]["id"] for r in records
                     if r["metadata"]["kind"] == "receive" and isinstance(r["result"], dict)}
            # Unique within the agent, and roughly ordered across agents (the run has no shared counter).
            seq = itertools.count(max([time.time_ns() // 1000, *(r["metadata"]["seq"] + 1 for r in records)]))
            runtime = Runtime(program, run_id=self.run_id, attempt=self.ownership.epoch, provider=provider, io=io,
                              journals={self.agent_id: AgentJournal(records, last_counter + 1)},
                              next_seq=seq.__next__, settings=executor.settings, peers=SpreadPeers(self, taken))
            runtime.on_agent = self._hook
            self.runtime = runtime

            def stop(reason: Any, runtime: Runtime = runtime) -> None:
                runtime.stop_reason = reason

            self.ownership.stop = stop
            if Executor.draining.is_set():
                runtime.stop_reason = Handoff
            unit = self.unit
            try:
                try:
                    result = loops.run(runtime.run_agent(self.agent_id, unit["klass"], unit.get("kwargs") or {},
                                                           bool(unit.get("entry")),
                                                           run.args if unit.get("first") else None))
                except Parked:
                    return "parked"
                except InputUnavailable:
                    if self.park("waiting", "user", "") == 0:
                        announce = False
                        continue  # the answer came while parking: go on with it
                    return "waiting"
                except ProgramEnd:
                    self.unit["result"] = None
                    client.hsetnx(k.run(self.run_id), "ended", _now_ms(client))
                    finish_run(executor, self.run_id, "succeeded", result_of=self.unit)
                    self.park("done", "", "")
                    return "ended the run"
                except Handoff:
                    self._requeue()
                    io.status(f"↪️  Worker {executor.store.owner} is shutting down: agent {self.agent_id} "
                              "continues on another worker")
                    return "handed_off"
                except Cancelled:
                    self.park("done", "", "")  # the run was cancelled or ended: this agent is done with it
                    return "cancelled"
                except Divergence as div:
                    return self._fail(NonDeterminismError(
                        f"replay of agent {self.agent_id} diverged at checkpoint {div.checkpoint_id} "
                        f"({div.statement}): the journal recorded {div.expected}, but the program now calls "
                        f"{div.got}", hint="an agent of a spread run resumes only the program it started with"),
                        runtime)
                except Exception as exc:
                    return self._fail(exc, runtime)
                self.unit["result"] = None if result is None else repr(result)[:500]
                self.park("done", "", "")
                return "done"
            except Fenced:
                return "fenced"  # another task owns this agent now: it records how things end

    def _hook(self, agent: Agent) -> None:
        agent.journal.on_effects = self._enqueue
        agent.journal.defer_receives = True

    def _flush(self) -> None:
        agent = self.runtime.agents.get(self.agent_id) if self.runtime is not None else None
        if agent is not None:
            agent.journal.flush()

    def _enqueue(self, agent_ids: list[str]) -> None:
        for agent_id in agent_ids:
            self.executor.enqueue(agent_id)

    def park(self, state: str, waiting_for: str, last_id: str) -> int:
        """PARK (scripts.py); acts on the run-level outcome. Returns its code (0 = keep going)."""
        executor, client, k = self.executor, self.executor.client, self.executor.keys
        assert self.ownership is not None
        self._flush()  # a parked agent's journal is complete: `status`, `inspect` and its next task see it all
        while True:
            units = [_text(u) for u in client.smembers(k.units(self.run_id))]
            code = int(executor.store.scripts.park(
                keys=[k.run(self.agent_id), k.epoch(self.agent_id), k.lease(self.agent_id), k.run(self.run_id),
                      k.mailbox(self.agent_id), k.inbox(self.run_id), k.units(self.run_id),
                      k.inbox(self.agent_id), *(k.run(u) for u in units)],
                args=[self.ownership.epoch, state, waiting_for, last_id, json.dumps(self.unit, default=repr),
                      self.ownership.lease_value]))
            if code != -3:
                break
        if code == -1:
            raise Fenced(self.agent_id, self.ownership.epoch)
        if code == 0:
            return 0
        # Parked: its epoch moved on, so this task can write nothing more; its lease is gone.
        executor.store.owned.pop(self.agent_id, None)
        if self.runtime is not None:
            self.runtime.stop_reason = lambda: Parked(waiting_for)
        if code == 2:
            finish_run(executor, self.run_id, result_of=self.unit)
        elif code == 3:
            run = executor.store.get(self.run_id)
            run.state, run.waiting_for = "waiting", "user"
            if set_run(executor, run, "waiting", end_event(RunOutcome(run, "waiting"), None, "")) == -2:
                set_run(executor, run, "queued")  # input came meanwhile: the run's task hands it out
                executor.enqueue(self.run_id)
        return code

    def _requeue(self) -> None:
        executor, k = self.executor, self.executor.keys
        assert self.ownership is not None
        executor.store.scripts.save_run(
            keys=[k.run(self.agent_id), k.epoch(self.agent_id), k.lease(self.agent_id), k.inbox(self.run_id)],
            args=[self.ownership.epoch, json.dumps(self.unit, default=repr), "queued", "0", "1"])
        executor.store.owned.pop(self.agent_id, None)
        executor.enqueue(self.agent_id)

    def _fail(self, exc: BaseException, runtime: Runtime | None) -> str:
        failing = _failing_checkpoint(exc)
        if failing is not None and runtime is not None:
            # Resuming retries the call that failed: its record, and any written after it, are skipped.
            _, counter = parse_record_id(failing[0])
            agent = runtime.agents.get(self.agent_id)
            last = agent.journal.next_counter - 1 if agent is not None else counter
            self.unit.setdefault("skip", []).append([counter, last])
        self.unit["failed"] = f"{type(exc).__name__}: {exc}"
        try:
            self.park("failed", "", "")  # marks the run ended: if this worker dies now, a sweep ends it
        except Fenced:
            return "fenced"
        finish_run(self.executor, self.run_id, "failed", exc, result_of=self.unit)
        return "failed"


class AgentIO(ClusterIO):
    """A spread run's agent reads user input by claiming it from the run's inbox into its own, atomically, so
    two agents waiting for the user never take the same answer; its input checkpoint consumes it there."""

    def __init__(self, client: Any, keys: Any, run_id: str, agent_id: str) -> None:
        super().__init__(client, keys, run_id)
        self.agent_id = agent_id

    async def read_input(self, agent: Any) -> str:
        mine = self.keys.inbox(self.agent_id)
        with store_calls():
            text = self.client.lindex(mine, 0)
            if text is None:
                text = self.client.lmove(self.keys.inbox(self.run_id), mine, "LEFT", "RIGHT")
        if text is None:
            raise InputUnavailable(f"agent {self.agent_id} waits for input from user",
                                   hint=f"answer with: playbooks send {self.run_id} 'your answer'")
        return text.decode() if isinstance(text, bytes) else str(text)


def agent_rows(executor_or_client: Any, keys: Any, run_id: str) -> list[dict[str, Any]]:
    """Every agent of a spread run: its state, the worker it runs on, what it waits for (for `status`)."""
    client = executor_or_client
    units = in_creation_order(run_id, (_text(u) for u in client.smembers(keys.units(run_id))))
    pipe = client.pipeline(transaction=False)
    for agent_id in units:
        pipe.hmget(keys.run(agent_id), "state", "waiting_for", "json", "failovers")
        pipe.get(keys.lease(agent_id))
    replies = pipe.execute()
    rows = []
    for i, agent_id in enumerate(units):
        (state, waiting_for, raw, failovers), lease = replies[2 * i], replies[2 * i + 1]
        info = json.loads(raw) if raw else {}
        state_text = _text(state or b"")
        rows.append({
            "agent_id": agent_id,
            "klass": info.get("klass", ""),
            "state": state_text,
            "worker": _text(lease).split(" ")[0] if lease else None,
            "waiting_for": (_text(waiting_for) or None) if state_text in ("waiting", "running") and waiting_for
            else None,
            "failovers": int(failovers or 0),
            "error": info.get("failed"),
        })
    return rows
