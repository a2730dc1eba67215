"""The client side of cluster mode: submit a run, follow its events, answer it, cancel it.

`playbooks run` in cluster mode is `submit` + `follow`; `attach`, `send` and `cancel` are the rest. Output
reaches the user exactly once because each Say is published in the same atomic write as its checkpoint, and
the follower reads the run's stream in order from wherever it left off — across failovers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from playbooks_worker.cluster.app import enqueue_run
from playbooks_worker.cluster.connection import check_reachable
from playbooks_worker.cluster.keys import Keys
from playbooks_worker.cluster.scripts import Scripts
from playbooks_worker.cluster.store import RedisRunStore
from playbooks_worker.config import Settings
from playbooks_worker.errors import RunError
from playbooks_worker.program.model import Program
from playbooks_worker.runs import FINISHED, RunRecord, new_run_id

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


class ClusterClient:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = check_reachable(settings)
        self.keys = Keys(settings.cluster.key_prefix)
        self.scripts = Scripts(self.client)
        self.store = RedisRunStore(self.client, keys=self.keys, lease_seconds=settings.cluster.lease_seconds,
                                   finished_ttl_s=settings.cluster.finished_ttl_s, enqueue=self.enqueue,
                                   scripts=self.scripts)

    def enqueue(self, run_id: str) -> None:
        try:
            enqueue_run(run_id, self.settings)
        except Exception as exc:  # kombu raises its own OperationalError family once its retries are spent
            from playbooks_worker.config import redact_url
            from playbooks_worker.errors import ClusterUnavailable

            raise ClusterUnavailable(
                f"cannot enqueue run {run_id} on {redact_url(self.settings.cluster.broker_url)}: {exc}",
                hint=f"the run is stored; once the broker is back: playbooks run PROGRAM --resume {run_id}",
            ) from None

    # -- submitting ------------------------------------------------------------------------------------

    def submit(self, program: Program, display: str, args: dict[str, Any] | None = None,
               run_id: str | None = None) -> RunRecord:
        """A new run, queued. With a known `run_id` submitting again is a no-op (idempotent)."""
        run = RunRecord(run_id=run_id or new_run_id(), program=str(program.path), program_digest=program.digest,
                        created_at=time.time(), args=dict(args or {}), program_display=display,
                        sources=dict(program.sources))
        if self.store.create(run):
            self.enqueue(run.run_id)
            return run
        return self.store.get(run.run_id)

    def fork(self, program: Program, display: str, from_checkpoint: str) -> RunRecord:
        """A new run, queued, whose journals are an older run's up to `from_checkpoint` (DESIGN §3)."""
        from playbooks_worker.checkpoints.provider import split_checkpoint_id
        from playbooks_worker.checkpoints.redis import RedisCheckpointProvider
        from playbooks_worker.checkpoints.signing import load_secret_key
        from playbooks_worker.errors import CheckpointNotFound
        from playbooks_worker.runner import fork_journals, in_creation_order
        from playbooks_worker.runtime.engine import run_id_of_agent

        try:
            agent_id, _ = split_checkpoint_id(from_checkpoint)
        except ValueError as exc:
            raise CheckpointNotFound(str(exc), hint="'playbooks checkpoints RUN_ID' lists them") from None
        old = self.store.get(run_id_of_agent(agent_id))
        if len(old.agents) > 1 or old.spread:
            raise RunError(f"run {old.run_id} has several agents: --from-checkpoint cannot fork it yet (the agents "
                           "they created and the messages they sent are named after the old run)",
                           hint=f"resume it instead: playbooks run {display} --resume {old.run_id}")
        if old.spread:
            raise RunError(f"run {old.run_id} ran each agent as a task of its own: its agents' checkpoints have "
                           "no common order to cut at", hint=f"resume it instead: playbooks run {display} --resume "
                           f"{old.run_id}")
        provider = RedisCheckpointProvider(self.client, prefix=self.keys.prefix, secret_key=load_secret_key(
            create=False), max_size_mb=self.settings.durability.max_checkpoint_size_mb)
        cutoff = provider.read_sync(from_checkpoint)["metadata"]["seq"]
        # The old program's digest: a worker that sees the sources differ resumes from the last checkpoint
        # that still matches, as a local fork does.
        run = RunRecord(run_id=new_run_id(), program=str(program.path), program_digest=old.program_digest,
                        created_at=time.time(), args=old.args, program_display=display,
                        sources=dict(program.sources), parent={"run_id": old.run_id, "checkpoint_id": from_checkpoint})
        agents = in_creation_order(old.run_id, provider.run_agents_sync(old.run_id))
        fork_journals(provider, agents, old, run.run_id, cutoff)
        self.store.create(run)
        self.enqueue(run.run_id)
        return run

    def find_resumable(self, program: Program) -> RunRecord | None:
        for run in self.store.list():
            if run.program == str(program.path) and run.state not in FINISHED:
                return run
        return None

    def resume(self, run: RunRecord, program: Program) -> str:
        """Continue `run` with (possibly edited) `program`; returns what was done, for the user."""
        if run.state in FINISHED:
            raise RunError(f"run {run.run_id} already {run.state}", hint="run the program again without --resume")
        if run.state == "waiting":
            return "waiting for input"
        if run.state == "running" and self.client.exists(self.keys.lease(run.run_id)):
            return f"running on {run.worker}"
        if run.state == "running" and run.spread:
            return "running: each agent is a task of its own; 'playbooks status' shows where"
        run.sources = dict(program.sources)  # an edited program: the worker sees its digest differ
        self.store.set_sources(run.run_id, run.sources)
        if run.state == "failed":
            self.store.revive(run)
        run.state = "queued"
        self.store.save(run)  # enqueues it
        return "resubmitted"

    # -- following -------------------------------------------------------------------------------------

    def events(self, run_id: str, after: str = "0-0", idle_check_s: float = 2.0) -> Iterator[dict[str, Any]]:
        """The run's events from `after` on, forever (the caller stops at an `end` event it accepts).

        When the stream is quiet the run's state is checked too: a run that finished without its final event
        (its worker died between the two writes) still ends the follow.
        """
        key = self.keys.events(run_id)
        quiet_since = time.monotonic()
        while True:
            reply = self.client.xread({key: after}, block=500, count=100)
            if reply:
                quiet_since = time.monotonic()
                for _stream, entries in reply:
                    for entry_id, fields in entries:
                        after = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                        yield json.loads(fields[b"event"])
                continue
            if time.monotonic() - quiet_since > idle_check_s:
                quiet_since = time.monotonic()
                run = self.store.get(run_id)
                if run.state in TERMINAL:
                    yield {"type": "end", "state": run.state, "lines": [f"Run {run_id} {run.state}"],
                           "hint": run.error}

    def send(self, run_id: str, text: str) -> bool:
        """Give the run user input; True when this woke a waiting run (it is queued again)."""
        k = self.keys
        event = json.dumps({"type": "input", "text": text})
        result = self.scripts.send_input(keys=[k.run(run_id), k.inbox(run_id), k.events(run_id)], args=[text, event])
        if result == -3:
            self.store.get(run_id)  # raises RunNotFound with the hint
        if result == 1:
            self.enqueue(run_id)
            return True
        return False

    def cancel(self, run_id: str) -> str:
        k = self.keys
        event = json.dumps({"type": "end", "state": "cancelled", "lines": ["⏹️  Run cancelled"]})
        result = self.scripts.cancel(keys=[k.run(run_id), k.events(run_id)], args=[event])
        state = result.decode() if isinstance(result, bytes) else str(result)
        if not state:
            self.store.get(run_id)
        if state == "cancelled":
            self.store.expire(self.store.get(run_id))
        return state

    def workers(self) -> list[dict[str, Any]]:
        now = time.time()
        rows = []
        for _owner, raw in self.client.hgetall(self.keys.workers).items():
            info = json.loads(raw)
            info["alive"] = now - info.get("seen_at", 0) < 3 * self.settings.cluster.lease_seconds
            rows.append(info)
        return rows


def display_name(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path
