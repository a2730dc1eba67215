"""End-to-end helpers: every test drives the real `playbooks` command in a subprocess, in its own directory.

A test gets a `Workspace` (fixture `ws`): `tmp_path` as the working directory with its own `playbooks.toml`
(durability on) and its own environment (a fixed signing key, no PLAYBOOKS_* from outside, a private
XDG_CONFIG_HOME). Programs record side effects by appending lines to `effects.log` from inside their tools, so
a test can count how many times each tool really ran; `crash.flag` makes the tool named in it kill the process
with `os._exit(137)` (and removes the flag first, so the resumed run passes). The fixtures are in conftest.py.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_support import Result, playbooks_command

SECRET_KEY = "e2e-test-secret-key-0123456789abcdef"
DURABLE_TOML = "[durability]\nenabled = true\n"
DEFAULT_TIMEOUT_S = 30.0
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


# The tools block most programs share: `effect` appends a line to effects.log, `crash_point` exits the
# process hard when crash.flag names this point. Both are plain functions, so calling them is not a leaf.
TOOLS = '''
```python
import os


def effect(*parts):
    with open("effects.log", "a", encoding="utf-8") as log:
        log.write(" ".join(str(p) for p in parts) + "\\n")


def crash_point(tag):
    if os.path.exists("crash.flag"):
        with open("crash.flag", encoding="utf-8") as flag:
            wanted = flag.read().strip()
        if wanted == tag:
            os.remove("crash.flag")
            os._exit(137)
```
'''


class Workspace:
    """One test's directory, environment and `playbooks` runner."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYBOOKS_")}
        self.env.update({
            "PLAYBOOKS_SECRET_KEY": SECRET_KEY,
            "XDG_CONFIG_HOME": str(root / ".config"),
            "PYTHONUNBUFFERED": "1",
            "PYTHONWARNINGS": "error",
        })
        self.config(DURABLE_TOML)

    # -- files ----------------------------------------------------------------------------------------

    def write(self, name: str, text: str) -> Path:
        """Write a file (a .pb program, usually), dedented, relative to the workspace."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def program(self, name: str, agent_header: str, body: str, *, tools: str = "") -> Path:
        """`# Agent` + the shared TOOLS block + the program's own tool code + its playbooks."""
        text = textwrap.dedent(agent_header).strip("\n") + "\n" + TOOLS
        if tools:
            text += "\n```python\n" + textwrap.dedent(tools).strip("\n") + "\n```\n"
        text += "\n" + textwrap.dedent(body).strip("\n") + "\n"
        return self.write(name, text)

    def config(self, text: str) -> None:
        self.write("playbooks.toml", text)

    def crash_at(self, tag: str) -> None:
        (self.root / "crash.flag").write_text(tag, encoding="utf-8")

    def effects(self) -> list[str]:
        path = self.root / "effects.log"
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []

    def effect_counts(self) -> collections.Counter[str]:
        return collections.Counter(self.effects())

    def checkpoint_files(self, storage: str = ".checkpoints") -> list[Path]:
        return sorted((self.root / storage).glob("*/*_ckpt_*.pkl"),
                      key=lambda p: (p.parent.name, int(p.stem.rsplit("_", 1)[1])))

    def counters(self, agent_id: str, storage: str = ".checkpoints") -> list[int]:
        return sorted(int(p.stem.rsplit("_", 1)[1])
                      for p in (self.root / storage / agent_id).glob(f"{agent_id}_ckpt_*.pkl"))

    # -- the command ----------------------------------------------------------------------------------

    def pb(self, *args: str, input: str | None = None, timeout: float = DEFAULT_TIMEOUT_S,
           env: dict[str, str] | None = None, stdin_closed: bool = False) -> Result:
        """Run `playbooks ARGS…` to completion. stdin is `input`, or empty (EOF at once) when None; with
        `stdin_closed` the child has no stdin at all (fd 0 closed, as under some supervisors)."""
        done = subprocess.run(
            [*playbooks_command(), *args],
            cwd=self.root,
            env={**self.env, **(env or {})},
            input=None if stdin_closed else (input or ""),
            stdin=subprocess.DEVNULL if stdin_closed else None,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout,
            preexec_fn=(lambda: os.close(0)) if stdin_closed else None,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start `playbooks ARGS…` in the background, with SIGINT at its default (a non-interactive parent
        would otherwise hand it down ignored), stdin closed at once, stdout and stderr piped."""
        return subprocess.Popen(
            [*playbooks_command(), *args],
            cwd=self.root,
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    def wait_until(self, condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
        """Poll `condition` until it is truthy; fail the test after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.02)
        pytest.fail(f"timed out after {timeout} s waiting for {what}")


def say_lines(*runs: Result) -> list[str]:
    """Everything the program said across runs (the crashed one and its resume), in order."""
    return [line for run in runs for line in run.out]


def resume_header(agent_id: str, checkpoint: str, statement_prefix: str) -> list[str]:
    """The guide's resume lines for one agent (the statement shortened as the CLI does)."""
    return [
        f"🔄 Found checkpoint for agent {agent_id}",
        f"   Checkpoint: {checkpoint}",
        f"   Last statement: {statement_prefix}",
        f"✅ Resumed execution for agent {agent_id}",
    ]


def agent_dirs(ws: Workspace, storage: str = ".checkpoints") -> list[str]:
    base = ws.root / storage
    return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")) if base.exists() \
        else []


def only_agent(ws: Workspace) -> str:
    dirs = agent_dirs(ws)
    assert len(dirs) == 1, dirs
    return dirs[0]
