"""What the CLI draws on a terminal: the live status line of `playbooks run` and the tables of `top`."""

from __future__ import annotations

import io
import sys
import time

import pytest
from rich.console import Console

from playbooks_cli import statusline
from playbooks_cli.statusline import CLEAR, StatusLine, render
from playbooks_cli.views import top_frame


def test_render_shows_elapsed_checkpoints_and_the_step() -> None:
    assert render("Main:02:QUE", 7, 12.4) == "⏳ 12s · 7 checkpoints saved · step: Main:02:QUE"
    assert render(None, 1, 61) == "⏳ 1m01s · 1 checkpoint saved"
    assert render("x", 0, 3 * 3600 + 120).startswith("⏳ 3h02m · 0 checkpoints saved")


def test_render_fits_the_terminal_width() -> None:
    text = render("a very long step name " * 10, 12345, 5.0, width=40)
    assert len(text) == 38 and text.endswith("…")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_line_is_erased_before_other_output_and_not_drawn_after_a_prompt() -> None:
    stream = Terminal()
    now = [100.0]
    line = StatusLine(stream, clock=lambda: now[0])
    line.update(step="Greet", checkpoints=2)
    now[0] += 3
    line.draw()
    assert stream.getvalue() == CLEAR + "⏳ 3s · 2 checkpoints saved · step: Greet"

    erasing = statusline._Erasing(stream, line)
    erasing.write("Hello!\n")  # the program's output
    assert stream.getvalue().endswith(CLEAR + "Hello!\n")
    line.draw()
    erasing.write("User: ")  # a prompt: the line must not come back over it
    before = stream.getvalue()
    line.draw()
    assert stream.getvalue() == before

    with line.paused():  # reading the answer
        line.draw()
        assert stream.getvalue() == before
    line.draw()  # the answer's Enter ended the prompt's line
    assert stream.getvalue().endswith(CLEAR + "⏳ 3s · 2 checkpoints saved · step: Greet")


def test_start_wraps_the_streams_and_stop_restores_them_and_clears(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(sys, "stdout", Terminal())
    line = StatusLine.for_terminal()
    assert line is not None
    line.every_s = 0.01
    polled: list[int] = []
    line.poll = lambda: polled.append(1)
    with line:
        assert isinstance(sys.stderr, statusline._Erasing) and isinstance(sys.stdout, statusline._Erasing)
        assert StatusLine.active is line
        deadline = time.monotonic() + 5
        while "checkpoints saved" not in terminal.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert sys.stderr is terminal and StatusLine.active is None
    assert "checkpoints saved" in terminal.getvalue() and terminal.getvalue().endswith(CLEAR)
    assert polled


def test_no_line_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert StatusLine.for_terminal() is None


def test_a_top_frame_shows_runs_and_workers() -> None:
    now = 1_800_000_000.0
    snapshot = {
        "mode": "cluster", "where": "redis://:***@redis:6379/0",
        "runs": [
            {"run_id": "aaa111", "state": "running", "worker": "host-a:41", "attempts": 2, "failovers": 1,
             "created_at": now - 125, "updated_at": now - 3, "program": "/srv/steps.pb",
             "program_display": "steps.pb"},
            {"run_id": "bbb222", "state": "succeeded", "worker": None, "attempts": 1, "failovers": 0,
             "created_at": now - 7200, "updated_at": now - 3600, "program": "/srv/other.pb"},
        ],
        "workers": [{"host": "host-a", "pid": 41, "runs": ["aaa111"], "draining": False, "seen_at": now - 1,
                     "alive": True},
                    {"host": "host-b", "pid": 7, "runs": [], "draining": True, "seen_at": now - 90,
                     "alive": False}],
    }
    out = io.StringIO()
    Console(file=out, width=130, color_system=None).print(top_frame(snapshot, now=now))
    text = out.getvalue()
    assert "cluster redis://:***@redis:6379/0" in text and "1 running, 1 succeeded" in text
    run_row = next(line for line in text.splitlines() if "aaa111" in line)
    for cell in ("running", "host-a:41", "2", "1", "2m", "steps.pb"):
        assert cell in run_row
    worker_row = next(line for line in text.splitlines() if "host-b" in line)
    for cell in ("7", "0", "yes", "1m ago (gone)"):
        assert cell in worker_row
