"""What a terminal shows: `top --once`, the tables of `runs` / `status`, and the live status line of `run`.

The other e2e tests run `playbooks` with pipes, so they see none of this; here stderr (and for the tables,
stdout) is a pseudo-terminal.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import termios
import time

from e2e_support import Result, Workspace, playbooks_command

SLOW_BODY = """
## Main

```python
total = 0
for n in range(1, 7):
    await Step(f"Work on part {n}")
    total += await Slow(n)
await Say("user", f"total {total}")
```
"""

SLOW_TOOLS = """
import time

@playbook
def Slow(n: int) -> int:
    time.sleep(0.25)
    return n
"""


def on_terminal(ws: Workspace, *args: str, stdout_too: bool = False, timeout: float = 30.0) -> tuple[Result, str]:
    """Run `playbooks ARGS…` with stderr (and with `stdout_too`, stdout) on a pseudo-terminal 120 columns wide.

    Returns the result (its stdout when that is a pipe) and everything the terminal received.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen([*playbooks_command(), *args], cwd=ws.root, env={**ws.env, "TERM": "xterm"},
                               stdin=subprocess.DEVNULL, stdout=slave if stdout_too else subprocess.PIPE,
                               stderr=slave)
    os.close(slave)
    received = {master: bytearray()}
    out_fd = process.stdout.fileno() if process.stdout is not None else -1
    if out_fd >= 0:
        received[out_fd] = bytearray()
    open_fds = set(received)
    deadline = time.monotonic() + timeout
    try:
        while open_fds and time.monotonic() < deadline:
            ready, _, _ = select.select(list(open_fds), [], [], 0.1)
            for fd in ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO on the terminal: every process holding it has exited
                    chunk = b""
                if chunk:
                    received[fd] += chunk
                else:
                    open_fds.discard(fd)
        process.wait(timeout=10)
    finally:
        os.close(master)
        if process.stdout is not None:
            process.stdout.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    stdout = received.get(out_fd, b"")
    return Result(process.returncode, bytes(stdout).decode(), ""), received[master].decode(errors="replace")


def test_run_shows_a_live_status_line_on_a_terminal_and_leaves_stdout_alone(ws: Workspace) -> None:
    ws.program("slow.pb", "# Slow:AI", SLOW_BODY, tools=SLOW_TOOLS)

    result, terminal = on_terminal(ws, "run", "slow.pb")

    assert result.returncode == 0, terminal
    assert result.out == ["total 21"]  # stdout (a pipe) carries only what the program says
    assert "\r\x1b[2K⏳ " in terminal  # drawn, and erased before each status line
    assert "checkpoints saved · step: Work on part " in terminal
    assert "Execution complete ✅" in terminal
    tail = terminal.rsplit("Execution complete ✅", 1)[1]
    assert "⏳" not in tail  # gone once the run ended


def test_piped_runs_show_no_status_line(ws: Workspace) -> None:
    ws.program("slow.pb", "# Slow:AI", SLOW_BODY, tools=SLOW_TOOLS)
    result = ws.pb("run", "slow.pb")
    assert result.returncode == 0, result
    assert "⏳" not in result.stderr and "\x1b" not in result.stderr


def test_top_once_prints_one_frame_of_the_local_runs(ws: Workspace) -> None:
    ws.program("slow.pb", "# Slow:AI", SLOW_BODY, tools=SLOW_TOOLS)
    assert ws.pb("run", "slow.pb").returncode == 0
    run_id = json.loads(ws.pb("runs", "--json").stdout)[0]["run_id"]

    top = ws.pb("top", "--once")

    assert top.returncode == 0, top
    assert "playbooks top  local .checkpoints" in top.stdout and "1 succeeded" in top.stdout
    row = next(line for line in top.stdout.splitlines() if run_id in line)
    assert "succeeded" in row and "slow.pb" in row
    assert "Workers" not in top.stdout  # local mode: no workers


def test_top_once_with_no_runs(ws: Workspace) -> None:
    top = ws.pb("top", "--once")
    assert top.returncode == 0, top
    assert "no runs" in top.stdout


def test_runs_and_status_draw_tables_on_a_terminal(ws: Workspace) -> None:
    ws.program("slow.pb", "# Slow:AI", SLOW_BODY, tools=SLOW_TOOLS)
    assert ws.pb("run", "slow.pb").returncode == 0
    run_id = json.loads(ws.pb("runs", "--json").stdout)[0]["run_id"]

    _, runs = on_terminal(ws, "runs", stdout_too=True)
    _, status = on_terminal(ws, "status", run_id, stdout_too=True)

    assert "┃ RUN" in runs or "│ RUN" in runs or "RUN " in runs
    assert "━" in runs or "─" in runs  # a rich table, not the plain columns
    assert run_id in runs and "succeeded" in runs
    assert run_id in status and "Attempts" in status and "Agents" in status and "slow_1_" in status
