"""The checkpoint store interface: an implementation gives five synchronous methods; this base composes them.

A checkpoint is one journal record of one agent (DESIGN §3-§4), stored under the id
`{agent_id}_ckpt_{n}` with `n` counting 1, 2, 3… per agent and never reused. The record is a dict:

    {"checkpoint_id": str,
     "metadata": {"statement", "counter", "timestamp", "execution_id" (= agent id), "call_path", "kind",
                  "name", "digest", "run_id", "seq", "file", "line"},
     "result": Any, "error": BaseException | None, "state_writes": dict}

Implementations sign every payload (signing.py) and verify before unpickling. The runtime calls the
synchronous methods on its hot path; the async methods are the user's API from the guide.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Any

CKPT_SEPARATOR = "_ckpt_"
# The id is a directory name and, with `_ckpt_N.pkl`, a file name: both at most 255 bytes. Runtime ids stay far
# below (agent names are at most 100 characters); an id typed on the command line may not, and the file system
# would answer ENAMETOOLONG, an OSError, where "not found" is meant.
MAX_AGENT_ID_BYTES = 230


def checkpoint_id(agent_id: str, counter: int) -> str:
    return f"{agent_id}{CKPT_SEPARATOR}{counter}"


def split_checkpoint_id(ckpt_id: str) -> tuple[str, int]:
    """`agent_123_ckpt_7` -> (`agent_123`, 7); ValueError when it is not a checkpoint id."""
    agent_id, sep, counter = ckpt_id.rpartition(CKPT_SEPARATOR)
    if not sep or not agent_id or not counter.isdigit():
        raise ValueError(f"{ckpt_id!r} is not a checkpoint id (expected AGENT_ID_ckpt_N)")
    return agent_id, int(counter)


def is_valid_agent_id(agent_id: str) -> bool:
    """Can be stored: the id becomes a directory name, so no separators, NUL or hidden (`.runs/`) names."""
    if not agent_id or agent_id[0] == ".":
        return False
    if len(agent_id.encode("utf-8", "surrogatepass")) > MAX_AGENT_ID_BYTES:
        return False
    return "/" not in agent_id and "\\" not in agent_id and "\0" not in agent_id


def parse_record_id(ckpt_id: str) -> tuple[str, int]:
    """(agent id, counter) of a checkpoint id a store may write; ValueError for anything non-canonical."""
    agent_id, counter = split_checkpoint_id(ckpt_id)
    if counter < 1 or ckpt_id != checkpoint_id(agent_id, counter) or not is_valid_agent_id(agent_id):
        raise ValueError(
            f"{ckpt_id!r} cannot be written: expected AGENT_ID_ckpt_N with N >= 1 and an agent id "
            f"without '/', '\\', NUL or a leading '.', of at most {MAX_AGENT_ID_BYTES} bytes"
        )
    return agent_id, counter


class CheckpointProvider(ABC):
    """Storage for agents' journals. Subclasses implement the five `_sync` methods."""

    # -- what an implementation provides ---------------------------------------------------------------

    # True when write_sync(event=...) publishes the event in the same atomic write as the record (Redis:
    # output exactly once). Otherwise the journal hands events to its sink just before writing.
    delivers_events = False

    @abstractmethod
    def write_sync(self, record: dict[str, Any], *, event: dict[str, Any] | None = None,
                   consume_input: bool = False) -> None:
        """Store `record` under `record["checkpoint_id"]` atomically; never overwrite an existing id.

        `event`: output to publish with the record (only when `delivers_events`). `consume_input`: the record
        is an input leaf's, so the input it consumed leaves the run's inbox in the same write (cluster mode).
        Raises CheckpointTooLarge over the size limit (naming metadata.statement), and `errors.Fenced` when
        the store refuses the write because another owner took the run over.
        """

    @abstractmethod
    def read_sync(self, ckpt_id: str) -> dict[str, Any]:
        """The verified record. CheckpointNotFound / CheckpointCorrupt otherwise."""

    @abstractmethod
    def ids_sync(self, agent_id: str) -> list[str]:
        """Checkpoint ids of one agent, ordered by counter (numerically: ckpt_10 after ckpt_9)."""

    @abstractmethod
    def delete_agent_sync(self, agent_id: str) -> int:
        """Delete every checkpoint of an agent; returns how many."""

    @abstractmethod
    def agents_sync(self) -> list[str]:
        """Every agent id that has at least one checkpoint."""

    # -- composed on top -------------------------------------------------------------------------------

    def read_journal_sync(self, agent_id: str) -> list[dict[str, Any]]:
        """Every record of an agent in counter order. Stores with a faster bulk read override this."""
        return [self.read_sync(ckpt_id) for ckpt_id in self.ids_sync(agent_id)]

    def run_agents_sync(self, run_id: str) -> list[str]:
        """The agents of one run (agent ids end with `_{run_id}`). Stores with an index override this."""
        suffix = f"_{run_id}"
        return [a for a in self.agents_sync() if a.endswith(suffix)]

    def next_counter_sync(self, agent_id: str) -> int:
        ids = self.ids_sync(agent_id)
        return split_checkpoint_id(ids[-1])[1] + 1 if ids else 1

    # -- the guide's async API -------------------------------------------------------------------------

    async def save_checkpoint(self, record: dict[str, Any]) -> str:
        await asyncio.to_thread(self.write_sync, record)
        return str(record["checkpoint_id"])

    async def load_checkpoint(self, ckpt_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.read_sync, ckpt_id)

    async def list_checkpoints(self, agent_id: str) -> list[str]:
        return await asyncio.to_thread(self.ids_sync, agent_id)

    async def delete_checkpoints(self, agent_id: str) -> int:
        return await asyncio.to_thread(self.delete_agent_sync, agent_id)
