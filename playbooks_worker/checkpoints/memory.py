"""Checkpoints in a dict: for runs without durability and for fast tests.

Records still go through the Signer as signed cloudpickle blobs, so a value that cannot be pickled, a size
limit or a tampered blob fails here exactly as it would on disk — a test on this store proves the same thing.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from playbooks_worker.checkpoints.provider import (
    CheckpointProvider,
    checkpoint_id,
    parse_record_id,
    split_checkpoint_id,
)
from playbooks_worker.checkpoints.signing import Signer, decode_record, encode_record, max_bytes_for
from playbooks_worker.errors import CheckpointError, CheckpointNotFound


class MemoryCheckpointProvider(CheckpointProvider):
    """A process-local store; the key defaults to a random one per instance (nothing outlives the process)."""

    def __init__(self, *, max_size_mb: float | None = 10, secret_key: bytes | None = None) -> None:
        self.max_size_mb = max_size_mb
        self._max_bytes = max_bytes_for(max_size_mb)
        self._signer = Signer(secret_key if secret_key is not None else os.urandom(32))
        self._blobs: dict[str, dict[int, bytes]] = {}  # agent id -> counter -> signed blob
        self._lock = threading.Lock()  # the async API runs these methods in worker threads

    def __repr__(self) -> str:
        return f"MemoryCheckpointProvider(max_size_mb={self.max_size_mb!r})"

    def write_sync(
        self, record: dict[str, Any], *, event: dict[str, Any] | None = None, consume_input: bool = False
    ) -> None:
        # `event` and `consume_input` are for stores that publish output and keep an inbox in the same
        # atomic write (Redis). This one has neither (delivers_events is False): the journal delivers output
        # itself, just before the write.
        ckpt_id = record["checkpoint_id"]
        agent_id, counter = parse_record_id(ckpt_id)
        blob = encode_record(self._signer, record, max_bytes=self._max_bytes)
        with self._lock:
            agent = self._blobs.setdefault(agent_id, {})
            if counter in agent:
                raise CheckpointError(
                    f"checkpoint {ckpt_id} already exists: checkpoints are never overwritten; "
                    "is another task running the same agent?"
                )
            agent[counter] = blob

    def read_sync(self, ckpt_id: str) -> dict[str, Any]:
        try:
            agent_id, counter = split_checkpoint_id(ckpt_id)
        except ValueError as e:
            raise CheckpointNotFound(str(e)) from None
        blob = self._blobs.get(agent_id, {}).get(counter)
        if blob is None or ckpt_id != checkpoint_id(agent_id, counter):
            raise CheckpointNotFound(f"checkpoint {ckpt_id} not found (in-memory store)")
        return decode_record(self._signer, ckpt_id, blob)

    def ids_sync(self, agent_id: str) -> list[str]:
        with self._lock:
            counters = sorted(self._blobs.get(agent_id, ()))
        return [checkpoint_id(agent_id, n) for n in counters]

    def delete_agent_sync(self, agent_id: str) -> int:
        with self._lock:
            return len(self._blobs.pop(agent_id, {}))

    def agents_sync(self) -> list[str]:
        with self._lock:
            return sorted(agent_id for agent_id, blobs in self._blobs.items() if blobs)
