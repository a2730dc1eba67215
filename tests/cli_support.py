"""What every test that runs the real `playbooks` command shares (tests/e2e and tests/integration)."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def playbooks_command() -> list[str]:
    """The installed console script next to this interpreter (not a pyenv shim: that costs 100 ms a call)."""
    script = Path(sys.executable).parent / "playbooks"
    if script.exists():
        return [str(script)]
    found = shutil.which("playbooks")
    return [found] if found else [sys.executable, "-m", "playbooks_cli.main"]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def out(self) -> list[str]:
        return self.stdout.splitlines()

    @property
    def err(self) -> list[str]:
        return self.stderr.splitlines()

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:  # what a failed assertion shows
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
