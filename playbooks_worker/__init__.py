"""playbooks-worker: a durable, distributed runtime for Playbooks programs.

The public API; everything else is internal and may change.
"""

from playbooks_worker.api import CollectingIO, Playbooks
from playbooks_worker.checkpoints import (
    CheckpointManager,
    CheckpointProvider,
    FilesystemCheckpointProvider,
    MemoryCheckpointProvider,
    RecoveryCoordinator,
)
from playbooks_worker.config import Settings, load_settings
from playbooks_worker.errors import PlaybooksError
from playbooks_worker.program import load_program
from playbooks_worker.runner import RunOutcome

__all__ = [
    "CheckpointManager",
    "CheckpointProvider",
    "CollectingIO",
    "FilesystemCheckpointProvider",
    "MemoryCheckpointProvider",
    "Playbooks",
    "PlaybooksError",
    "RecoveryCoordinator",
    "RunOutcome",
    "Settings",
    "load_program",
    "load_settings",
]
