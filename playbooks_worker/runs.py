"""Runs: the user's unit of work. A run has attempts (each start or resume is one), agents, and a state.

    queued -> running -> succeeded | failed | cancelled
              running -> waiting   (for user input)

Locally a run record is a JSON file `{storage_path}/.runs/{run_id}.json`, rewritten atomically at state
changes (never per checkpoint), and an executing process holds `{run_id}.lock` with flock so no two
processes execute one run. A run whose record says `running` but whose lock is free was interrupted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from playbooks_worker.errors import RunLocked, RunNotFound

FINISHED = frozenset({"succeeded", "cancelled"})
STATES = ("queued", "running", "waiting", "succeeded", "failed", "cancelled")


def new_run_id() -> str:
    return secrets.token_hex(6)


@dataclass
class Attempt:
    number: int
    started_at: float
    host: str
    pid: int
    cutoff_seq: int | None = None  # records of earlier attempts with a larger seq are not replayed
    ended_at: float | None = None
    outcome: str | None = None


@dataclass
class RunRecord:
    run_id: str
    program: str  # absolute path of the program file
    program_digest: str
    created_at: float
    args: dict[str, Any] = field(default_factory=dict)
    state: str = "queued"
    updated_at: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)
    agents: list[dict[str, str]] = field(default_factory=list)  # [{"agent_id", "klass"}] in creation order
    error: str | None = None
    failed_seq: int | None = None  # the record whose exception failed the run: retried on resume
    waiting_for: str | None = None
    parent: dict[str, str] | None = None  # {"run_id", "checkpoint_id"} when forked by --from-checkpoint
    result: str | None = None
    program_display: str = ""  # the program as the user named it (`blah.pb`)
    sources: dict[str, str] = field(default_factory=dict)  # cluster mode: workers have no shared disk
    worker: str | None = None  # host:pid executing it now (cluster mode)
    failovers: int = 0
    handoffs: int = 0
    spread: bool = False  # cluster mode: each agent is its own task (cluster/spread.py)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def to_json(self, *, sources: bool = True) -> dict[str, Any]:
        # By hand, not dataclasses.asdict: that deep-copies the program's sources (and each attempt's fields, all
        # flat) on every save.
        data = {name: getattr(self, name) for name in self.__dataclass_fields__ if sources or name != "sources"}
        data["attempts"] = [dict(vars(a)) for a in self.attempts]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        data = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        data["attempts"] = [Attempt(**a) for a in data.get("attempts", [])]
        return cls(**data)

    def begin_attempt(self, cutoff_seq: int | None = None) -> Attempt:
        attempt = Attempt(number=len(self.attempts) + 1, started_at=time.time(), host=socket.gethostname(),
                          pid=os.getpid(), cutoff_seq=cutoff_seq)
        self.attempts.append(attempt)
        self.state = "running"
        return attempt


class RunStore(Protocol):
    """Where run records live: files beside the checkpoints locally, Redis in cluster mode."""

    def save(self, run: RunRecord) -> None: ...

    def get(self, run_id: str) -> RunRecord: ...

    def list(self) -> list[RunRecord]: ...

    def delete(self, run_id: str) -> None: ...

    def lock(self, run_id: str) -> contextlib.AbstractContextManager[Any]: ...


def valid_records(records: list[dict[str, Any]], attempts: list[Attempt]) -> list[dict[str, Any]]:
    """The records an attempt may replay: each attempt's cutoff drops later records of earlier attempts."""
    cutoffs = {a.number: a.cutoff_seq for a in attempts}
    if not any(c is not None for c in cutoffs.values()):
        return records
    ordered = sorted(records, key=lambda r: r["metadata"]["seq"])
    valid: list[dict[str, Any]] = []
    for attempt in sorted(cutoffs):
        cutoff = cutoffs[attempt]
        if cutoff is not None:
            valid = [r for r in valid if r["metadata"]["seq"] <= cutoff]
        valid.extend(r for r in ordered if r["metadata"].get("attempt", 1) == attempt)
    return sorted(valid, key=lambda r: r["metadata"]["counter"])


MAX_RUN_ID_CHARS = 60  # 60 characters of up to 4 UTF-8 bytes fit a 255-byte file name; ids made here have 12


class FileRunStore:
    """Run records as JSON files beside the checkpoints."""

    def __init__(self, storage_path: str | Path) -> None:
        self.root = Path(storage_path) / ".runs"

    def _path(self, run_id: str) -> Path:
        # A run id typed on the command line becomes a file name: refuse what cannot be one of ours (a path,
        # a hidden name, NUL) or is too long for the filesystem, which would otherwise be an OSError traceback.
        if not run_id or run_id[0] == "." or any(c in run_id for c in "/\\\0") or len(run_id) > MAX_RUN_ID_CHARS:
            raise RunNotFound(f"no run {run_id!r} under {self.root.parent}", hint="'playbooks runs' lists the runs")
        return self.root / f"{run_id}.json"

    def save(self, run: RunRecord) -> None:
        run.updated_at = time.time()
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{run.run_id}.json.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(run.to_json(), handle, indent=1, default=repr)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self._path(run.run_id))

    def get(self, run_id: str) -> RunRecord:
        path = self._path(run_id)
        try:
            return RunRecord.from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise RunNotFound(f"no run {run_id!r} under {self.root.parent}",
                              hint="'playbooks runs' lists the runs") from None
        except (ValueError, TypeError) as exc:
            raise RunNotFound(f"{path}: unreadable run record ({exc})") from None

    def list(self) -> list[RunRecord]:
        if not self.root.is_dir():
            return []
        runs = []
        for path in self.root.glob("*.json"):
            with contextlib.suppress(RunNotFound):
                runs.append(self.get(path.stem))
        return sorted(runs, key=lambda r: r.created_at, reverse=True)

    def delete(self, run_id: str) -> None:
        for path in (self._path(run_id), self.root / f"{run_id}.lock"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def is_locked(self, run_id: str) -> bool:
        path = self.root / f"{run_id}.lock"
        if not path.exists():
            return False
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False

    @contextlib.contextmanager
    def lock(self, run_id: str) -> Iterator[None]:
        """Held while this process executes the run; RunLocked when another process holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{run_id}.lock"
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise RunLocked(f"run {run_id} is already being executed by {holder}",
                                hint="wait for it to finish, or stop that process first") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
