"""Shared by the checkpoint tests (a module with its own name: `conftest` is ambiguous across test folders).

`Store` gives the contract suite raw access to stored blobs (to tamper with them) without the suite knowing
how each store keeps them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playbooks_worker.checkpoints import (
    CheckpointProvider,
    FilesystemCheckpointProvider,
    MemoryCheckpointProvider,
    split_checkpoint_id,
)
from playbooks_worker.checkpoints.redis import RedisCheckpointProvider
from playbooks_worker.cluster.keys import Keys
from playbooks_worker.runtime.engine import run_id_of_agent

KEY = b"test-key-0123456789abcdef-0123456789"


def make_record(agent_id: str, counter: int, *, result: Any = None, statement: str | None = None) -> dict[str, Any]:
    ckpt_id = f"{agent_id}_ckpt_{counter}"
    return {
        "checkpoint_id": ckpt_id,
        "metadata": {
            "statement": statement or f"x{counter} = await Step{counter}()",
            "counter": counter,
            "timestamp": 1731170130.0 + counter,
            "execution_id": agent_id,
            "call_path": f"1.{counter}",
            "kind": "tool",
            "name": f"Step{counter}",
            "digest": "d" * 16,
            "run_id": "run-1",
            "seq": counter,
            "file": "blah.pb",
            "line": 10 + counter,
        },
        "result": result if result is not None else {"value": counter},
        "error": None,
        "state_writes": {"last": counter},
    }


@dataclass
class Store:
    """One store under test, plus raw access to its bytes."""

    name: str
    provider: CheckpointProvider
    sibling: Callable[..., CheckpointProvider]  # another provider over the same storage (other key / limit)
    get_blob: Callable[[str], bytes]
    put_blob: Callable[[str, bytes], None]


def filesystem_store(base: Path) -> Store:
    def sibling(*, secret_key: bytes = KEY, max_size_mb: float = 10) -> CheckpointProvider:
        return FilesystemCheckpointProvider(base, max_size_mb=max_size_mb, secret_key=secret_key)

    def path(ckpt_id: str) -> Path:
        agent_id, _ = split_checkpoint_id(ckpt_id)
        return base / agent_id / f"{ckpt_id}.pkl"

    def put_blob(ckpt_id: str, blob: bytes) -> None:
        path(ckpt_id).parent.mkdir(parents=True, exist_ok=True)
        path(ckpt_id).write_bytes(blob)

    return Store("filesystem", sibling(), sibling, lambda c: path(c).read_bytes(), put_blob)


def memory_store() -> Store:
    shared: dict[str, dict[int, bytes]] = {}

    def sibling(*, secret_key: bytes = KEY, max_size_mb: float = 10) -> CheckpointProvider:
        provider = MemoryCheckpointProvider(max_size_mb=max_size_mb, secret_key=secret_key)
        provider._blobs = shared  # same storage, as two filesystem providers share a directory
        return provider

    def get_blob(ckpt_id: str) -> bytes:
        agent_id, n = split_checkpoint_id(ckpt_id)
        return shared[agent_id][n]

    def put_blob(ckpt_id: str, blob: bytes) -> None:
        agent_id, n = split_checkpoint_id(ckpt_id)
        shared.setdefault(agent_id, {})[n] = blob

    return Store("memory", sibling(), sibling, get_blob, put_blob)


def redis_store(name: str, client: Any, prefix: str = "pbw") -> Store:
    """A RedisCheckpointProvider over `client` (fakeredis, or a real server): blobs are fields of journal hashes."""
    keys = Keys(prefix)

    def sibling(*, secret_key: bytes = KEY, max_size_mb: float = 10) -> CheckpointProvider:
        return RedisCheckpointProvider(client, prefix=prefix, secret_key=secret_key, max_size_mb=max_size_mb)

    def where(ckpt_id: str) -> tuple[str, str]:
        agent_id, n = split_checkpoint_id(ckpt_id)
        return keys.journal(run_id_of_agent(agent_id), agent_id), str(n)

    def get_blob(ckpt_id: str) -> bytes:
        blob = client.hget(*where(ckpt_id))
        assert blob is not None, f"{ckpt_id} is not stored"
        return bytes(blob)

    def put_blob(ckpt_id: str, blob: bytes) -> None:
        key, field = where(ckpt_id)
        client.hset(key, field, blob)

    return Store(name, sibling(), sibling, get_blob, put_blob)
