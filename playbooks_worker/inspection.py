"""What a checkpoint looked like: its record, and the variables as of it, rebuilt by replaying up to it.

Records hold results, not snapshots, so the variables of a checkpoint are recomputed: the program is replayed
(in replay-only mode: nothing runs live, nothing is written) with the journal cut after the checkpoint, and
stopped at the first call the cut journal cannot answer. The frames executing there are the call stack as of
the checkpoint, with their locals.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playbooks_worker.checkpoints import split_checkpoint_id
from playbooks_worker.errors import CheckpointNotFound, Divergence, PlaybooksError, ProgramEnd
from playbooks_worker.program import load_program, parse_sources
from playbooks_worker.runner import Runner
from playbooks_worker.runs import valid_records
from playbooks_worker.runtime.agent import ReplayExhausted
from playbooks_worker.runtime.engine import AgentJournal, Runtime, run_id_of_agent


class _SilentIO:
    def deliver(self, event: dict[str, Any]) -> None:
        pass

    async def read_input(self, agent: Any) -> str:
        raise AssertionError("replay-only runs never ask for input")

    def on_resumed(self, agent: Any) -> None:
        pass

    def on_checkpoint(self, agent: Any, record: dict[str, Any], replayed: bool) -> None:
        pass


@dataclass
class CheckpointView:
    record: dict[str, Any]
    run: Any = None
    frames: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, dict[str, Any]] = field(default_factory=dict)
    variables_error: str | None = None


def runner_for_provider(provider: Any) -> Runner:
    """A replay-only runner over a provider (and, for files, the run records beside it)."""
    from playbooks_worker.checkpoints import FilesystemCheckpointProvider
    from playbooks_worker.config import load_settings
    from playbooks_worker.runs import FileRunStore

    runs = FileRunStore(provider.base_path) if isinstance(provider, FilesystemCheckpointProvider) else None
    return Runner(load_settings(), _SilentIO(), provider, runs)  # type: ignore[arg-type]


async def inspect_checkpoint(runner: Runner, ckpt_id: str) -> CheckpointView:
    try:
        agent_id, _ = split_checkpoint_id(ckpt_id)
    except ValueError as exc:
        # Not found (exit 2, bad usage), as for a well-formed id that does not exist.
        raise CheckpointNotFound(str(exc), hint="'playbooks checkpoints RUN_ID' lists checkpoint ids") from None
    record = runner.provider.read_sync(ckpt_id)
    view = CheckpointView(record)
    if runner.runs is None:
        return view
    try:
        run = runner.runs.get(run_id_of_agent(agent_id))
    except PlaybooksError as exc:
        view.variables_error = exc.message
        return view
    view.run = run
    if not run.sources and not Path(run.program).exists():
        view.variables_error = f"{run.program} no longer exists: variables cannot be rebuilt"
        return view
    try:
        program = (parse_sources(run.program, run.sources, run.program_display or None) if run.sources
                   else load_program(run.program))
    except PlaybooksError as exc:
        view.variables_error = f"the program no longer parses: {exc.message}"
        return view
    cutoff = record["metadata"]["seq"]
    journals = {}
    for other in runner.agent_ids(run.run_id):
        records = runner.provider.read_journal_sync(other)
        kept = [r for r in valid_records(records, run.attempts) if r["metadata"]["seq"] <= cutoff]
        journals[other] = AgentJournal(kept, (records[-1]["metadata"]["counter"] + 1) if records else 1)
    runtime = Runtime(program, run_id=run.run_id, attempt=len(run.attempts) or 1, provider=runner.provider,
                      io=_SilentIO(), journals=journals, next_seq=itertools.count(1).__next__, replay_only=True,
                      settings=runner.settings)
    try:
        await runtime.run(run.args)
    except ReplayExhausted as stop:
        view.frames = stop.frames
    except ProgramEnd:
        pass
    except Divergence as div:  # the program (or what its code reads) changed since the run
        view.variables_error = (f"replay diverged at {div.checkpoint_id}: the journal recorded {div.expected}, "
                                f"the program now calls {div.got}")
    except BaseException as exc:  # the program's own failure at this point is part of what it looked like
        if not isinstance(exc, Exception):
            raise
        view.variables_error = f"replay stopped with {type(exc).__name__}: {exc}"
    view.state = {a.id: a.state.to_dict() for a in runtime.agents.values()}
    return view
