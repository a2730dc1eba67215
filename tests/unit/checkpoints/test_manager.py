"""The guide's Python API: CheckpointManager and RecoveryCoordinator, and the package's public names."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from ckpt_helpers import make_record

import playbooks_worker.checkpoints as checkpoints
from playbooks_worker.checkpoints import CheckpointManager, MemoryCheckpointProvider, RecoveryCoordinator


def test_the_public_names_are_pinned() -> None:
    assert sorted(checkpoints.__all__) == [
        "CheckpointManager",
        "CheckpointProvider",
        "FilesystemCheckpointProvider",
        "MemoryCheckpointProvider",
        "RecoveryCoordinator",
        "Signer",
        "checkpoint_id",
        "load_secret_key",
        "split_checkpoint_id",
    ]


def test_an_agent_without_checkpoints() -> None:
    manager = CheckpointManager(execution_id="agent_123", provider=MemoryCheckpointProvider())
    coordinator = RecoveryCoordinator(manager)

    async def main() -> tuple[Any, ...]:
        return (
            await manager.list_checkpoints(),
            await manager.get_latest_checkpoint(),
            await coordinator.can_recover(),
            await coordinator.get_recovery_info(),
        )

    assert asyncio.run(main()) == ([], None, False, None)
    assert manager.checkpoint_counter == 0


def test_an_agent_with_checkpoints() -> None:
    provider = MemoryCheckpointProvider()
    for n in range(1, 12):
        provider.write_sync(make_record("agent_123", n))
    provider.write_sync(make_record("other", 1))
    manager = CheckpointManager(execution_id="agent_123", provider=provider)
    coordinator = RecoveryCoordinator(manager)

    async def main() -> tuple[Any, ...]:
        return (
            await manager.list_checkpoints(),
            await manager.load_checkpoint("agent_123_ckpt_2"),
            await manager.get_latest_checkpoint(),
            await coordinator.can_recover(),
            await coordinator.get_recovery_info(),
        )

    listed, second, latest, can_recover, info = asyncio.run(main())

    assert listed == [f"agent_123_ckpt_{n}" for n in range(1, 12)]
    assert second["metadata"]["statement"] == "x2 = await Step2()"
    assert latest["checkpoint_id"] == "agent_123_ckpt_11"
    assert manager.checkpoint_counter == 11
    assert can_recover is True
    assert info == {
        "checkpoint_id": "agent_123_ckpt_11",
        "statement": "x11 = await Step11()",
        "counter": 11,
        "timestamp": 1731170141.0,
        "call_path": "1.11",
        "kind": "tool",
        "name": "Step11",
    }


# The guide's "Check Checkpoint Info" snippet, word for word but for the package name.
GUIDE_SNIPPET = """
from playbooks_worker.checkpoints import FilesystemCheckpointProvider, CheckpointManager

provider = FilesystemCheckpointProvider()
manager = CheckpointManager(execution_id="agent_123", provider=provider)

checkpoints = await provider.list_checkpoints("agent_123")
print(f"Found {len(checkpoints)} checkpoints")

for ckpt_id in checkpoints:
    ckpt = await provider.load_checkpoint(ckpt_id)
    print(f"{ckpt_id}: {ckpt['metadata']['statement']}")
"""

PLAYBOOKS_TOML = """\
[durability]
enabled = true
storage_path = "var/ckpts"
max_checkpoint_size_mb = 10
keep_last_n = 10
"""


def test_the_guides_check_checkpoint_info_snippet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLAYBOOKS_SECRET_KEY", "a-long-enough-test-secret")
    # Not the default path: the snippet's FilesystemCheckpointProvider() must find it through playbooks.toml.
    (tmp_path / "playbooks.toml").write_text(PLAYBOOKS_TOML)
    writer = checkpoints.FilesystemCheckpointProvider("var/ckpts", max_size_mb=10)
    writer.write_sync(make_record("agent_123", 1, statement="orders = await FetchOrders()"))
    writer.write_sync(make_record("agent_123", 2, statement="batch_result = await SaveBatch(results)"))
    writer.write_sync(make_record("agent_456", 1, statement="x = await Other()"))

    body = "".join(f"    {line}\n" for line in GUIDE_SNIPPET.strip().splitlines())
    namespace: dict[str, Any] = {}
    exec(f"async def main():\n{body}", namespace)
    asyncio.run(namespace["main"]())

    assert capsys.readouterr().out == (
        "Found 2 checkpoints\n"
        "agent_123_ckpt_1: orders = await FetchOrders()\n"
        "agent_123_ckpt_2: batch_result = await SaveBatch(results)\n"
    )
    assert sorted(p.name for p in (tmp_path / "var" / "ckpts" / "agent_123").iterdir()) == [
        "agent_123_ckpt_1.pkl",
        "agent_123_ckpt_2.pkl",
    ]
