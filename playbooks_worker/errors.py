"""Every error playbooks-worker raises, under one root.

    PlaybooksError                  anything a user can fix; the CLI prints it without a traceback
    ├── ConfigError                 playbooks.toml / PLAYBOOKS_* values (exit 2)
    ├── ProgramError                a .pb file that does not parse or names what does not exist (exit 2)
    ├── SecretKeyError              no usable HMAC key, or a key file others can read (exit 2)
    ├── ClusterUnavailable          Redis cannot be reached (exit 2)
    ├── CheckpointError             a checkpoint that cannot be written or trusted
    │   ├── CheckpointCorrupt       tampered, truncated, unsigned, or signed for another id
    │   ├── CheckpointTooLarge      over durability.max_checkpoint_size_mb
    │   └── CheckpointNotFound
    └── RunError                    a run that cannot be started or continued
        ├── RunNotFound
        ├── RunLocked               another process executes the run
        ├── NonDeterminismError     replay met a different call than the journal recorded
        └── InputUnavailable        the run waits for user input that cannot come (exit 3)

Control flow is not an error: `PlaybookReturn`, `ProgramEnd`, `Divergence`, `Handoff` and `Fenced` derive
from BaseException so that a playbook's `except Exception:` cannot swallow them.
"""

from __future__ import annotations

from typing import Any


class PlaybooksError(Exception):
    """Root of every user-facing error. `hint` is the fix, printed on its own line."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.message, self.hint))

    def __str__(self) -> str:
        return self.message


class ConfigError(PlaybooksError):
    exit_code = 2


class ProgramError(PlaybooksError):
    """`file:line: what is wrong`, and a hint."""

    exit_code = 2


class SecretKeyError(PlaybooksError):
    exit_code = 2


class CheckpointError(PlaybooksError):
    exit_code = 1


class CheckpointCorrupt(CheckpointError):
    pass


class CheckpointTooLarge(CheckpointError):
    pass


class CheckpointNotFound(CheckpointError):
    exit_code = 2


class RunError(PlaybooksError):
    exit_code = 1


class RunNotFound(RunError):
    exit_code = 2


class RunLocked(RunError):
    exit_code = 2


class NonDeterminismError(RunError):
    pass


class InputUnavailable(RunError):
    exit_code = 3


class StoreUnavailable(BaseException):
    """The checkpoint store (Redis) failed a call mid-run: a connection lost, a server restarting. Not the
    program's outcome — never recorded, never caught by playbook code (`except Exception`): the run stops
    where it is, its lease lapses, and it resumes from its last checkpoint once the store is back."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


class Parked(BaseException):
    """A spread run's agent waits for a message that has not come: its task ends and frees the worker; the
    message, when sent, enqueues it again (DESIGN §5)."""

    def __init__(self, waiting_for: str) -> None:
        super().__init__(f"waiting for a message from {waiting_for}")
        self.waiting_for = waiting_for


class PlaybookReturn(BaseException):
    """Raised by `Return(value)`; caught by the playbook that is returning."""

    def __init__(self, value: Any = None) -> None:
        super().__init__(value)
        self.value = value


class ProgramEnd(BaseException):
    """Raised by `EndProgram()` / `Exit()` / `Yield("exit")`: the whole run completes."""


class Divergence(BaseException):
    """Replay met a call the journal did not record; the runner decides: fork or refuse."""

    def __init__(self, checkpoint_id: str, seq: int, expected: str, got: str, statement: str) -> None:
        super().__init__(checkpoint_id)
        self.checkpoint_id = checkpoint_id
        self.seq = seq
        self.expected = expected
        self.got = got
        self.statement = statement


class Handoff(BaseException):
    """The worker is shutting down: stop at this await and let another worker continue the run."""


class Fenced(BaseException):
    """A checkpoint write was refused: another worker took the run over (a newer epoch). Stop, write nothing."""

    def __init__(self, run_id: str, epoch: int) -> None:
        super().__init__(f"run {run_id}: epoch {epoch} was fenced out by a newer owner")
        self.run_id = run_id
        self.epoch = epoch

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.run_id, self.epoch))


class ClusterUnavailable(PlaybooksError):
    """Redis (the broker or the checkpoint store) cannot be reached."""

    exit_code = 2


class Cancelled(BaseException):
    """`playbooks cancel`: the run stops at its next await and ends as cancelled."""
