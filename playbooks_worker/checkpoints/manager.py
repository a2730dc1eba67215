"""The guide's Python API over a provider: one agent's checkpoints, and what a resume would start from."""

from __future__ import annotations

import asyncio
from typing import Any

from playbooks_worker.checkpoints.provider import CheckpointProvider, split_checkpoint_id

RECOVERY_INFO_KEYS = ("statement", "counter", "timestamp", "call_path", "kind", "name")


class CheckpointManager:
    """The checkpoints of one agent (`execution_id` is the agent id, as in the guide)."""

    def __init__(self, execution_id: str, provider: CheckpointProvider) -> None:
        self.execution_id = execution_id
        self.provider = provider

    def __repr__(self) -> str:
        return f"CheckpointManager(execution_id={self.execution_id!r}, provider={self.provider!r})"

    async def list_checkpoints(self) -> list[str]:
        return await self.provider.list_checkpoints(self.execution_id)

    async def load_checkpoint(self, ckpt_id: str) -> dict[str, Any]:
        return await self.provider.load_checkpoint(ckpt_id)

    async def get_latest_checkpoint(self) -> dict[str, Any] | None:
        """The newest record, or None when the agent has none."""
        return await asyncio.to_thread(self._latest_sync)

    def _latest_sync(self) -> dict[str, Any] | None:
        # One thread hop for list + read: this is on the resume path.
        ids = self.provider.ids_sync(self.execution_id)
        return self.provider.read_sync(ids[-1]) if ids else None

    @property
    def checkpoint_counter(self) -> int:
        """The counter of the newest checkpoint, 0 when there is none."""
        ids = self.provider.ids_sync(self.execution_id)
        return split_checkpoint_id(ids[-1])[1] if ids else 0


class RecoveryCoordinator:
    """Answers "can this agent resume, and from where?" for the CLI and the guide's programmatic resume."""

    def __init__(self, manager: CheckpointManager) -> None:
        self.manager = manager

    async def can_recover(self) -> bool:
        return bool(await self.manager.list_checkpoints())

    async def get_recovery_info(self) -> dict[str, Any] | None:
        """checkpoint_id, statement, counter, timestamp, call_path, kind and name of the newest checkpoint."""
        latest = await self.manager.get_latest_checkpoint()
        if latest is None:
            return None
        metadata = latest.get("metadata") or {}
        info: dict[str, Any] = {"checkpoint_id": latest.get("checkpoint_id")}
        info.update({key: metadata.get(key) for key in RECOVERY_INFO_KEYS})
        return info

    async def recover_execution_state(self, agent: Any = None) -> dict[str, Any] | None:
        """The agent as of its latest checkpoint: its state, and its call stack with each frame's variables.

        Rebuilt by replaying the agent's run up to that checkpoint with nothing running live (DESIGN §3:
        records hold results, not snapshots). `agent` is accepted for the guide's call shape; the execution
        id given to the manager names the agent. To *continue* the run, use `Playbooks([...]).resume()`.
        """
        latest = await self.manager.get_latest_checkpoint()
        if latest is None:
            return None
        from playbooks_worker.inspection import inspect_checkpoint, runner_for_provider

        view = await inspect_checkpoint(runner_for_provider(self.manager.provider), latest["checkpoint_id"])
        return {
            "checkpoint_id": latest["checkpoint_id"],
            "metadata": latest["metadata"],
            "state": view.state.get(self.manager.execution_id, {}),
            "frames": view.frames,
            "variables_error": view.variables_error,
        }
