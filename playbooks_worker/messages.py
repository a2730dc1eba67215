"""The words of the user's guide and of failure reports, in one place.

The terminal (local mode) prints them; a worker publishes them on the run's event stream (cluster mode),
and the following CLI prints them the same way.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

from playbooks_worker.runtime.engine import display_path


def short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def found_checkpoint_lines(agent_id: str, record: dict[str, Any]) -> list[str]:
    return [f"🔄 Found checkpoint for agent {agent_id}",
            f"   Checkpoint: {record['checkpoint_id']}",
            f"   Last statement: {short(record['metadata']['statement'])}"]


def no_checkpoints_line(agent_id: str) -> str:
    return f"⚠️  No checkpoints found for agent {agent_id}"


def resumed_line(agent_id: str) -> str:
    return f"✅ Resumed execution for agent {agent_id}"


def failure_lines(error: BaseException | str | None, sources: dict[str, str]) -> list[str]:
    """What failed, and the lines of the user's program it failed in — not the runtime's frames. `error` may be
    the text of a failure recorded elsewhere (`Type: message`): then there are no frames to show."""
    if error is None:
        return []
    if isinstance(error, str):
        return [f"❌ The program failed: {error}"]
    lines = [f"❌ The program failed: {type(error).__name__}: {error}"]
    files = {str(Path(p).resolve()) for p in sources}
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename in files:
            lines.append(f"   {display_path(frame.filename)}:{frame.lineno} in {frame.name}: "
                         f"{(frame.line or '').strip()}")
    return lines
