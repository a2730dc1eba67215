"""The live status line of `playbooks run` on a terminal: the current step, checkpoints saved, time elapsed.

Only when stderr is a terminal (`StatusLine.for_terminal()` is None otherwise: piped output and the tests
see nothing of it). The line sits at the bottom, redrawn a few times a second by a daemon thread; while it
is shown, stdout (when it is the terminal too) and stderr are wrapped so that anything written — the
program's output, status lines, a tool's print(), a warning — first erases the line, and the line comes
back on the next tick. It is never drawn after a partial line (a prompt), nor while input is read.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

CLEAR = "\r\x1b[2K"


def elapsed(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


def render(step: str | None, checkpoints: int, elapsed_s: float, width: int = 80) -> str:
    """`⏳ 12s · 7 checkpoints saved · step: Ask the user for their name`, cut to fit `width` columns."""
    parts = [f"⏳ {elapsed(elapsed_s)}", f"{checkpoints} checkpoint{'' if checkpoints == 1 else 's'} saved"]
    if step:
        parts.append(f"step: {' '.join(step.split())}")
    text = " · ".join(parts)
    room = max(10, width - 2)  # the hourglass takes two columns; a full-width line would wrap on some terminals
    return text if len(text) <= room else text[: room - 1] + "…"


class StatusLine:
    active: StatusLine | None = None  # the one started in this process, if any

    def __init__(self, stream: TextIO | None = None, *, every_s: float = 0.25,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.every_s = every_s
        self.clock = clock
        self.started = clock()
        self.step: str | None = None
        self.checkpoints = 0
        self._lock = threading.RLock()
        self._shown = False
        self._paused = 0
        self._open_line = False  # something wrote a partial line (a prompt): drawing now would erase it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved: tuple[Any, Any] | None = None
        # Called from the line's thread about once a second to refresh what it shows (a cluster follower reads
        # the run's progress from Redis): never on the thread that prints the program's output.
        self.poll: Callable[[], None] | None = None
        self.poll_every_s = 1.0

    @classmethod
    def pausing(cls) -> contextlib.AbstractContextManager[None]:
        """Around reading input: the active line, if any, stays away until it is read."""
        return cls.active.paused() if cls.active is not None else contextlib.nullcontext()

    @classmethod
    def for_terminal(cls) -> StatusLine | None:
        stderr = sys.stderr
        if stderr is None or not stderr.isatty() or os.environ.get("TERM") == "dumb":
            return None
        return cls(stderr)

    # -- what it shows -----------------------------------------------------------------------------------

    def update(self, *, step: str | None = None, checkpoints: int | None = None) -> None:
        if step is not None:
            self.step = step
        if checkpoints is not None:
            self.checkpoints = checkpoints

    def text(self) -> str:
        try:
            width = os.get_terminal_size(self.stream.fileno()).columns  # stderr's: stdout may be a pipe
        except (AttributeError, OSError, ValueError):
            width = shutil.get_terminal_size((80, 24)).columns
        return render(self.step, self.checkpoints, self.clock() - self.started, width if width > 0 else 80)

    # -- drawing -----------------------------------------------------------------------------------------

    def draw(self) -> None:
        with self._lock:
            if self._paused or self._open_line or self._stop.is_set():
                return
            self.stream.write(CLEAR + self.text())
            self.stream.flush()
            self._shown = True

    def clear(self) -> None:
        with self._lock:
            if self._shown:
                self.stream.write(CLEAR)
                self.stream.flush()
                self._shown = False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No line while the block runs (reading input); it comes back at the next tick."""
        with self._lock:
            self.clear()
            self._paused += 1
        try:
            yield
        finally:
            with self._lock:
                self._paused -= 1
                self._open_line = False  # the user's Enter ended the prompt's line

    def wrote(self, text: str) -> None:
        """Someone else wrote `text` to the terminal (the line was cleared first, under the lock)."""
        if text:
            self._open_line = not text.endswith("\n")

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> StatusLine:
        self._saved = (sys.stdout, sys.stderr)
        if sys.stdout is not None and sys.stdout.isatty():
            sys.stdout = _Erasing(sys.stdout, self)  # type: ignore[assignment]
        sys.stderr = _Erasing(sys.stderr, self)  # type: ignore[assignment]
        self._thread = threading.Thread(target=self._tick, name="pbw-status-line", daemon=True)
        self._thread.start()
        StatusLine.active = self
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with self._lock:
            self._stop.set()
            self.clear()
        if self._saved is not None:
            sys.stdout, sys.stderr = self._saved
            self._saved = None
        if StatusLine.active is self:
            StatusLine.active = None

    def __enter__(self) -> StatusLine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _tick(self) -> None:
        polled = -self.poll_every_s
        while not self._stop.wait(self.every_s):
            if self.poll is not None and self.clock() - polled >= self.poll_every_s:
                polled = self.clock()
                with contextlib.suppress(Exception):  # progress is best effort: Redis away for a moment
                    self.poll()
            with contextlib.suppress(Exception):  # a closed terminal must not kill the run
                self.draw()


class _Erasing:
    """A text stream that erases the status line before each write."""

    def __init__(self, real: Any, line: StatusLine) -> None:
        self._real = real
        self._line = line

    def write(self, text: str) -> int:
        with self._line._lock:
            self._line.clear()
            written = self._real.write(text)
            self._real.flush()
            self._line.wrote(text)
        return int(written or 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)
