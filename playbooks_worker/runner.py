"""Start, resume and fork runs in this process: local mode (DESIGN §1), and the engine behind `Playbooks`.

The runner owns everything around an attempt — which run, which records it may replay, the run lock and
record, what a failure or a divergence means for the next attempt — and leaves execution to `Runtime`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from playbooks_worker import logs, metrics
from playbooks_worker.checkpoints import (
    CheckpointProvider,
    FilesystemCheckpointProvider,
    MemoryCheckpointProvider,
    split_checkpoint_id,
)
from playbooks_worker.checkpoints.provider import checkpoint_id
from playbooks_worker.config import Settings
from playbooks_worker.errors import (
    Cancelled,
    CheckpointNotFound,
    Divergence,
    Fenced,
    Handoff,
    InputUnavailable,
    NonDeterminismError,
    PlaybooksError,
    RunError,
)
from playbooks_worker.program.model import Program
from playbooks_worker.runs import Attempt, FileRunStore, RunRecord, RunStore, new_run_id, valid_records
from playbooks_worker.runtime.engine import (
    AgentJournal,
    RunIO,
    Runtime,
    agent_id_for,
    entry_agents,
    run_id_of_agent,
)

log = logging.getLogger("playbooks_worker.runner")


class Reporter(RunIO, Protocol):
    """RunIO plus the status lines of the user's guide."""

    def found_checkpoint(self, agent_id: str, record: dict[str, Any]) -> None: ...

    def no_checkpoints(self, agent_id: str) -> None: ...

    def notice(self, text: str) -> None: ...


@dataclass
class RunOutcome:
    run: RunRecord
    status: str  # succeeded | failed | waiting | interrupted | fenced | handed_off
    result: Any = None
    error: BaseException | str | None = None  # str: a failure recorded elsewhere (an agent of a spread run)

    @property
    def exit_code(self) -> int:
        return {"succeeded": 0, "failed": 1, "waiting": 3, "interrupted": 130, "fenced": 1,
                "handed_off": 0, "cancelled": 1}[self.status]


def _failing_checkpoint(error: BaseException) -> tuple[str, int] | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        tag = getattr(current, "__pbw_checkpoint__", None)
        if tag is not None:
            return tag
        current = current.__cause__ or current.__context__
    return None


def in_creation_order(run_id: str, agent_ids: Iterable[str]) -> list[str]:
    """Agent ids of a run (`{klass}_{n}_{run_id}`) by n."""
    suffix = f"_{run_id}"
    return sorted(agent_ids, key=lambda a: int(a[: -len(suffix)].rsplit("_", 1)[-1] or 0))


def fork_journals(provider: CheckpointProvider, agent_ids: list[str], old: RunRecord, new_run_id: str,
                  cutoff_seq: int) -> None:
    """Copy what `old` recorded up to `cutoff_seq` into the journals of run `new_run_id` (a fork)."""
    for old_agent in agent_ids:
        new_agent = old_agent[: -len(old.run_id)] + new_run_id
        kept = [r for r in valid_records(provider.read_journal_sync(old_agent), old.attempts)
                if r["metadata"]["seq"] <= cutoff_seq]
        for counter, record in enumerate(kept, start=1):
            copy = {**record, "checkpoint_id": checkpoint_id(new_agent, counter)}
            copy["metadata"] = {**record["metadata"], "counter": counter, "execution_id": new_agent,
                                "run_id": new_run_id, "attempt": 1}
            provider.write_sync(copy)


class Runner:
    """Attempts of runs against a run store and a checkpoint provider; local mode and workers share it.

    Subclasses decide what owning a run means (`_owned`: a file lock here, a lease with a fencing epoch on a
    worker) and which provider an owner writes through.
    """

    def __init__(self, settings: Settings, reporter: Reporter, provider: CheckpointProvider,
                 runs: RunStore | None) -> None:
        self.settings = settings
        self.reporter = reporter
        self.provider = provider
        self.runs = runs
        self.durable = runs is not None

    # -- choosing a run --------------------------------------------------------------------------------

    def find_resumable(self, program: Program) -> RunRecord | None:
        """The newest unfinished run of this program (interrupted, failed or waiting)."""
        if self.runs is None:
            return None
        for run in self.runs.list():
            if run.program == str(program.path) and not run.finished:
                return run
        return None

    def agent_ids(self, run_id: str) -> list[str]:
        return in_creation_order(run_id, self.provider.run_agents_sync(run_id))

    # -- the three ways in -----------------------------------------------------------------------------

    async def start(self, program: Program, args: dict[str, Any] | None = None) -> RunOutcome:
        run = RunRecord(run_id=new_run_id(), program=str(program.path), program_digest=program.digest,
                        created_at=time.time(), args=dict(args or {}))
        return await self._execute(program, run, cutoff=None, changed=False)

    async def resume(self, program: Program, run_id: str | None = None,
                     args: dict[str, Any] | None = None) -> RunOutcome:
        """Continue a run; with none to continue, start one with `args` (a resumed run keeps its own)."""
        if self.runs is None:
            raise RunError("resume needs durability", hint="set durability.enabled = true in playbooks.toml")
        run = self.runs.get(run_id) if run_id else self.find_resumable(program)
        if run is None:
            self.reporter.notice(f"⚠️  No checkpoints found for {program.path.name}: starting from the beginning")
            return await self.start(program, args)
        if run.program != str(program.path):
            raise RunError(f"run {run.run_id} is of {run.program}, not {program.path}",
                           hint=f"playbooks run {run.program} --resume {run.run_id}")
        if run.state == "succeeded":
            raise RunError(f"run {run.run_id} already completed", hint="run it again without --resume")
        cutoff = run.failed_seq - 1 if run.failed_seq else None
        return await self._execute(program, run, cutoff=cutoff, changed=run.program_digest != program.digest)

    async def fork(self, program: Program, from_checkpoint: str) -> RunOutcome:
        """A new run whose journals are the old run's up to `from_checkpoint`; the old run keeps the rest."""
        if self.runs is None:
            raise RunError("--from-checkpoint needs durability", hint="set durability.enabled = true")
        try:
            agent_id, _ = split_checkpoint_id(from_checkpoint)
        except ValueError as exc:
            raise CheckpointNotFound(str(exc), hint="'playbooks checkpoints RUN_ID' lists them") from None
        old = self.runs.get(run_id_of_agent(agent_id))
        cutoff = self.provider.read_sync(from_checkpoint)["metadata"]["seq"]
        if len(self.agent_ids(old.run_id)) > 1:
            raise RunError(f"run {old.run_id} has several agents: --from-checkpoint cannot fork it yet (the agents "
                           "they created and the messages they sent are named after the old run)",
                           hint=f"resume it instead: playbooks run {program.path.name} --resume {old.run_id}")
        run = RunRecord(run_id=new_run_id(), program=old.program, program_digest=old.program_digest,
                        created_at=time.time(), args=old.args,
                        parent={"run_id": old.run_id, "checkpoint_id": from_checkpoint})
        fork_journals(self.provider, self.agent_ids(old.run_id), old, run.run_id, cutoff)
        self.reporter.notice(f"🔀 Forked run {run.run_id} from checkpoint {from_checkpoint} "
                             f"(run {old.run_id} keeps its later checkpoints)")
        return await self._execute(program, run, cutoff=None, changed=old.program_digest != program.digest)

    # -- one run, one or more attempts -----------------------------------------------------------------

    # Whether taking the run (`_owned`) also saves the record with its first attempt begun (workers: in the
    # lease's own write), instead of a save of its own once the attempt's journals are loaded.
    owning_saves_attempt = False

    @contextlib.contextmanager
    def _owned(self, run: RunRecord) -> Iterator[CheckpointProvider]:
        """Exclusive execution of `run` while the block runs; yields the provider to write through."""
        if self.runs is None:
            yield self.provider
        else:
            with self.runs.lock(run.run_id):
                yield self.provider

    def _begin_attempt(self, program: Program, run: RunRecord, cutoff: int | None) -> Attempt:
        """The record of a new attempt, with the agents it starts (not saved yet)."""
        attempt = run.begin_attempt(cutoff)
        run.error = None
        run.failed_seq = None
        run.waiting_for = None
        run.program_digest = program.digest
        for index, (definition, _) in enumerate(entry_agents(program), start=1):
            self._add_agent(run, agent_id_for(definition.name, index, run.run_id), definition.name, save=False)
        return attempt

    async def _execute(self, program: Program, run: RunRecord, *, cutoff: int | None, changed: bool) -> RunOutcome:
        from playbooks_worker.llm.provider import require_llm

        require_llm(program, self.settings)
        announce = True
        attempt = self._begin_attempt(program, run, cutoff)
        with self._owned(run) as provider:
            saved = self.owning_saves_attempt
            while True:
                logs.bind_run(run.run_id)
                log.info("run %s: attempt %d started", run.run_id, attempt.number)
                journals, next_seq = self._load(run, announce)
                runtime = Runtime(program, run_id=run.run_id, attempt=attempt.number, provider=provider,
                                  io=self.reporter, journals=journals, next_seq=next_seq, settings=self.settings)
                if not saved:
                    self._save(run)  # the attempt counts from its start, with the agents it starts
                saved = False
                runtime.on_agent = lambda agent, run=run: self._add_agent(run, agent.id, agent.klass)
                self._started(run, runtime)
                try:
                    result = await runtime.run(run.args)
                except Divergence as div:
                    if not changed:
                        self._end(run, runtime, "failed", f"non-determinism at {div.checkpoint_id}")
                        raise NonDeterminismError(
                            f"replay diverged at checkpoint {div.checkpoint_id} ({div.statement}): the journal "
                            f"recorded {div.expected}, but the program now calls {div.got}",
                            hint="the program did not change, so something it does is not deterministic: "
                                 "make the varying call a @playbook (journaled), or use Now()/Random()",
                        ) from None
                    cutoff = div.seq - 1
                    changed = False  # the new program is now the run's program
                    self.reporter.notice(
                        f"⚠️  {program.path.name} changed since this run started: replay diverged at checkpoint "
                        f"{div.checkpoint_id} ({div.expected}; now {div.got})")
                    match = self._last_match(run, cutoff)
                    self.reporter.notice(f"   Resuming from {match}, the last checkpoint that still matches"
                                         if match else "   No earlier checkpoint matches: starting again "
                                         "from the beginning")
                    announce = False
                    self._end(run, runtime, "diverged")
                    attempt = self._begin_attempt(program, run, cutoff)
                    continue
                except Fenced as exc:
                    metrics.runs_executed.labels("fenced").inc()
                    # Another owner took the run over: its record and journal are theirs to write now.
                    return RunOutcome(run, "fenced", error=exc)
                except Handoff as exc:
                    run.handoffs += 1
                    metrics.handoffs.inc()
                    outcome = RunOutcome(run, "handed_off", error=exc)
                    self._end(run, runtime, "queued", "handed off", outcome)
                    return outcome
                except Cancelled as exc:
                    outcome = RunOutcome(run, "cancelled", error=exc)
                    self._end(run, runtime, "cancelled", "cancelled", outcome)
                    return outcome
                except InputUnavailable as exc:
                    run.waiting_for = "user"
                    outcome = RunOutcome(run, "waiting", error=exc)
                    self._end(run, runtime, "waiting", outcome=outcome)
                    return outcome
                except (KeyboardInterrupt, asyncio.CancelledError) as exc:
                    outcome = RunOutcome(run, "interrupted", error=exc)
                    self._end(run, runtime, "running", "interrupted", outcome)
                    return outcome
                except Exception as exc:
                    failing = _failing_checkpoint(exc)
                    run.failed_seq = failing[1] if failing else None
                    if isinstance(exc, PlaybooksError) and not failing:
                        self._end(run, runtime, "failed", f"{type(exc).__name__}: {exc}")
                        raise  # the caller reports it
                    outcome = RunOutcome(run, "failed", error=exc)
                    self._end(run, runtime, "failed", f"{type(exc).__name__}: {exc}", outcome)
                    return outcome
                run.result = None if result is None else repr(result)[:500]
                outcome = RunOutcome(run, "succeeded", result=result)
                self._end(run, runtime, "succeeded", outcome=outcome)
                self._prune(run)
                return outcome

    def _started(self, run: RunRecord, runtime: Runtime) -> None:
        """Called when an attempt's runtime exists, before it runs (workers attach their heartbeat here)."""

    def _load(self, run: RunRecord, announce: bool = True) -> tuple[dict[str, AgentJournal], Any]:
        journals: dict[str, AgentJournal] = {}
        max_seq = 0
        for agent_id in self.agent_ids(run.run_id) if self.runs is not None else []:
            records = self.provider.read_journal_sync(agent_id)
            if not records:
                continue
            max_seq = max(max_seq, max(r["metadata"]["seq"] for r in records))
            valid = valid_records(records, run.attempts)
            journals[agent_id] = AgentJournal(valid, records[-1]["metadata"]["counter"] + 1)
            if not announce:
                continue
            if valid:
                self.reporter.found_checkpoint(agent_id, valid[-1])
            else:
                self.reporter.no_checkpoints(agent_id)
        counter = itertools.count(max_seq + 1)
        return journals, counter.__next__

    def _last_match(self, run: RunRecord, cutoff: int) -> str | None:
        best: tuple[int, str] | None = None
        for agent_id in self.agent_ids(run.run_id):
            for record in valid_records(self.provider.read_journal_sync(agent_id), run.attempts):
                seq = record["metadata"]["seq"]
                if seq <= cutoff and (best is None or seq > best[0]):
                    best = (seq, f"{record['checkpoint_id']} ({record['metadata']['statement']})")
        return best[1] if best else None

    def _end(self, run: RunRecord, runtime: Runtime, state: str, error: str | None = None,
             outcome: RunOutcome | None = None) -> None:
        """Record how the attempt ended; `outcome` when this ends the run's execution here (and the caller does
        not raise instead)."""
        run.state = "running" if state in ("running", "diverged") else state
        run.worker = None if run.state != "running" else run.worker
        run.error = error
        attempt = run.attempts[-1]
        attempt.ended_at = time.time()
        attempt.outcome = "interrupted" if error == "interrupted" else state
        metrics.runs_executed.labels("handed_off" if state == "queued" else attempt.outcome).inc()
        run.agents = [{"agent_id": a.id, "klass": a.klass} for a in runtime.agents.values()]
        self._save(run, outcome)

    def _add_agent(self, run: RunRecord, agent_id: str, klass: str, save: bool = True) -> None:
        # Saved as each agent is created, so `status` of a run that crashed still lists its agents.
        if all(a["agent_id"] != agent_id for a in run.agents):
            run.agents.append({"agent_id": agent_id, "klass": klass})
            if save:
                self._save(run)

    def _save(self, run: RunRecord, outcome: RunOutcome | None = None) -> None:
        """Write the record; `outcome`: the attempt's end, which this write records (workers announce it in it)."""
        if self.runs is not None:
            self.runs.save(run)

    def _prune(self, finished: RunRecord) -> None:
        """Keep the checkpoints of the newest `keep_last_n` finished runs of this program."""
        if self.runs is None:
            return
        done = [r for r in self.runs.list() if r.program == finished.program and r.finished]
        for old in done[self.settings.durability.keep_last_n:]:
            self.delete_run(old.run_id)

    def delete_run(self, run_id: str) -> None:
        for agent_id in self.agent_ids(run_id):
            self.provider.delete_agent_sync(agent_id)
        if self.runs is not None:
            self.runs.delete(run_id)


class LocalRunner(Runner):
    """Runs in this process: checkpoints under `storage_path` (or in memory without durability)."""

    def __init__(self, settings: Settings, reporter: Reporter, provider: CheckpointProvider | None = None) -> None:
        durable = settings.durability.enabled
        path = Path(settings.durability.storage_path)
        limit = settings.durability.max_checkpoint_size_mb
        if provider is None:
            if durable and settings.durability.storage == "redis":
                from playbooks_worker.checkpoints.redis import RedisCheckpointProvider

                provider = RedisCheckpointProvider.from_settings(settings)
            elif durable:
                provider = FilesystemCheckpointProvider(path, max_size_mb=limit)
            else:
                provider = MemoryCheckpointProvider(max_size_mb=limit)
        super().__init__(settings, reporter, provider, FileRunStore(path) if durable else None)

    def delete_run(self, run_id: str) -> None:
        super().delete_run(run_id)
        for agent_dir in Path(self.settings.durability.storage_path).glob(f"*_{run_id}"):
            shutil.rmtree(agent_dir, ignore_errors=True)
