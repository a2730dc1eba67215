"""Checkpoint storage: the provider interface, the filesystem and in-memory stores, signing (DESIGN §4)."""

from playbooks_worker.checkpoints.filesystem import FilesystemCheckpointProvider
from playbooks_worker.checkpoints.manager import CheckpointManager, RecoveryCoordinator
from playbooks_worker.checkpoints.memory import MemoryCheckpointProvider
from playbooks_worker.checkpoints.provider import CheckpointProvider, checkpoint_id, split_checkpoint_id
from playbooks_worker.checkpoints.signing import Signer, load_secret_key

__all__ = [
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
