"""One agent's journal in one run: recorded results are replayed, new ones appended (DESIGN §3).

Appending a record *is* the checkpoint. A record is small — the leaf's result, not a snapshot of state — so
a checkpoint costs one signed write whatever the agent holds.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from typing import Any, Protocol

from playbooks_worker import logs, metrics
from playbooks_worker.checkpoints.provider import CheckpointProvider, checkpoint_id
from playbooks_worker.errors import CheckpointError, Divergence


class OutputSink(Protocol):
    """Where output recorded with a checkpoint goes (stdout locally; a Redis stream in cluster mode)."""

    def deliver(self, event: dict[str, Any]) -> None: ...


class Journal:
    def __init__(
        self,
        *,
        agent_id: str,
        run_id: str,
        attempt: int,
        provider: CheckpointProvider,
        records: list[dict[str, Any]],
        next_counter: int,
        next_seq: Callable[[], int],
        sink: OutputSink,
        statement_at: Callable[[str, int], str],
    ) -> None:
        self.agent_id = agent_id
        self.run_id = run_id
        self.attempt = attempt
        self.provider = provider
        self.by_path = {r["metadata"]["call_path"]: r for r in records}
        self.next_counter = next_counter
        self.next_seq = next_seq
        self.sink = sink
        self.statement_at = statement_at
        self.live = not records  # becomes True at the first call the journal has no record for
        self.replay_started = time.perf_counter()  # for metrics.replay_seconds
        self.on_live: Callable[[Journal], None] | None = None
        self.reasked: set[str] = set()  # paths of LLM calls asked again after a crash cut their answer off
        # A spread run's agent: what a live call did to other agents (a message, a new agent), by call path,
        # written with that call's record; and who to tell about the agents to enqueue that write returned.
        self.staged: dict[str, list[dict[str, Any]]] = {}
        self.on_effects: Callable[[list[str]], None] | None = None
        # Group commit of receives (spread runs): a receive's record is written in the same atomic write as the
        # agent's next record (or by `flush`). Safe because the message stays in the append-only mailbox
        # stream until a receive record names it: an agent that dies before then takes the same message
        # again, and nothing in between was recorded. It halves the writes of a conversation.
        self.defer_receives = False
        self.deferred: dict[str, Any] | None = None

    def lookup(self, path: str, kind: str, name: str, digest: str, describe: Callable[[], str],
               site: tuple[str, int]) -> dict[str, Any] | None:
        """The record for this call, or None when it must run live. Divergence when it does not match."""
        record = self.by_path.get(path)
        if record is None:
            if not self.live:
                self.live = True
                metrics.replay_seconds.observe(time.perf_counter() - self.replay_started)
                if self.on_live is not None:
                    self.on_live(self)
            return None
        meta = record["metadata"]
        if meta["kind"] != kind or meta["name"] != name or meta["digest"] != digest:
            reasked = max((p for p in self.reasked if path.startswith(p + ".")), key=len, default=None)
            if reasked is not None:
                # The model, asked again, answered differently from here on: the rest of that answer (the
                # innermost one re-asked, when a cut-off answer called another) runs live.
                self.drop_under(reasked)
                return None
            raise Divergence(
                checkpoint_id=record["checkpoint_id"],
                seq=meta["seq"],
                expected=f"{meta['kind']} {meta.get('call') or meta['name']} at {meta['file']}:{meta['line']}",
                got=f"{kind} {describe()} at {site[0]}:{site[1]}",
                statement=meta["statement"],
            )
        metrics.replayed_checkpoints.inc()
        return record

    def reask(self, path: str) -> None:
        """The LLM call at `path` has no record but calls under it do: its answer was cut off by a crash, and
        it is about to be asked again. The new answer's calls replay those records while they match (a Say
        is not said twice, a question not asked twice); from the first that differs, they run live."""
        if any(k.startswith(path + ".") for k in self.by_path):
            self.reasked.add(path)

    def settle(self, path: str) -> None:
        """The call at `path` was answered: records under it that its answer did not reach are forgotten."""
        if path in self.reasked:
            self.reasked.discard(path)
            self.drop_under(path)

    def drop_under(self, path: str) -> None:
        """Forget the records of calls made under `path` (left by an answer that was cut off)."""
        prefix = path + "."
        for key in [k for k in self.by_path if k.startswith(prefix)]:
            del self.by_path[key]

    def append(
        self,
        path: str,
        kind: str,
        name: str,
        digest: str,
        site: tuple[str, int],
        *,
        result: Any = None,
        error: BaseException | None = None,
        writes: dict[str, Any] | None = None,
        output: dict[str, Any] | None = None,
        started: float | None = None,
        call: str = "",
        statement: str | None = None,
    ) -> dict[str, Any]:
        counter = self.next_counter
        now = time.time()
        ckpt = checkpoint_id(self.agent_id, counter)
        record: dict[str, Any] = {
            "checkpoint_id": ckpt,
            "metadata": {
                "statement": self.statement_at(*site) if statement is None else statement,
                "counter": counter,
                "timestamp": now,
                "execution_id": self.agent_id,
                "run_id": self.run_id,
                "attempt": self.attempt,
                "seq": self.next_seq(),
                "call_path": path,
                "kind": kind,
                "name": name,
                "call": call,
                "digest": digest,
                "file": site[0],
                "line": site[1],
                "duration_ms": round((now - started) * 1000, 3) if started else None,
            },
            "result": result,
            "error": error,
            "state_writes": writes or {},
        }
        event = None
        if output is not None:
            if self.provider.delivers_events:
                event = output  # published in the same atomic write as the record: exactly once
            else:
                # Output is delivered before its record is written: a crash between the two repeats the
                # line once (at-least-once) rather than losing it.
                self.sink.deliver(output)
        consume = kind == "input"
        write_started = time.perf_counter()
        if kind == "receive" and self.defer_receives and error is None:
            self.flush()
            self.deferred = record
            self.next_counter = counter + 1
            return record
        effects = self.staged.pop(path, None)
        try:
            self._write(record, event, consume, effects)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            if error is not None:
                record["error"] = RuntimeError(f"{type(error).__name__}: {error}")
                self._write(record, event, consume, effects)
            else:
                raise CheckpointError(
                    f"{site[0]}:{site[1]}: the value of `{record['metadata']['statement']}` cannot be saved "
                    f"in a checkpoint: {exc}",
                    hint="return plain data (numbers, strings, lists, dicts, dataclasses) from playbooks",
                ) from exc
        metrics.checkpoint_write_seconds.observe(time.perf_counter() - write_started)
        metrics.checkpoints_written.inc()
        logs.wrote_checkpoint(ckpt)
        self.next_counter = counter + 1
        return record

    def flush(self) -> None:
        """Write the deferred receive record now (before the agent parks or its task ends)."""
        if self.deferred is not None:
            self.provider.write_sync(self.deferred)
            self.deferred = None

    def _write(self, record: dict[str, Any], event: dict[str, Any] | None, consume: bool,
               effects: list[dict[str, Any]] | None) -> None:
        if self.deferred is None and not effects:  # every await of every run but a spread run's receives
            self.provider.write_sync(record, event=event, consume_input=consume)
            return
        extra = {} if self.deferred is None else {"earlier": self.deferred}
        if not effects:
            self.provider.write_sync(record, event=event, consume_input=consume, **extra)
        else:
            woken = self.provider.write_with_effects(record, effects, event=event,  # type: ignore[attr-defined]
                                                     consume_input=consume, **extra)
            if woken and self.on_effects is not None:
                self.on_effects(woken)
        self.deferred = None
