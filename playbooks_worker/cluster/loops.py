"""Event loops reused from one task to the next.

`asyncio.run` per task made a loop (an epoll instance and a socket pair), then closed it: 0.09 ms of CPU per
task against 0.01 ms here, measured on the project's VM, where a one-step run costs a worker about 3 ms
(bench/throughput.py). A finished task's loop goes back to a small free list for the next task of any thread;
at most MAX_IDLE wait there (a burst of hundreds of slow runs on `-c 500` closes the rest), and a loop is only
ever run by one thread at a time.

Between two tasks a loop is left as `asyncio.run` would leave it before closing it: the tasks the coroutine
left behind are cancelled and awaited, each task starts in a fresh copy of the caller's context, and no loop is
the thread's current loop outside `run`. What it keeps is its default executor's threads (`asyncio.to_thread`),
ready for the next task.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

MAX_IDLE = 16

_idle: list[asyncio.AbstractEventLoop] = []
_lock = threading.Lock()


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coroutine)` on a reused loop."""
    with _lock:
        loop = _idle.pop() if _idle else None
    if loop is None:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(loop.create_task(coroutine, context=contextvars.copy_context()))
    finally:
        try:
            _cancel_left_over(loop)
        finally:
            asyncio.set_event_loop(None)
            _put_back(loop)


def _cancel_left_over(loop: asyncio.AbstractEventLoop) -> None:
    left = asyncio.all_tasks(loop)
    if not left:
        return
    for task in left:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
    for task in left:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler({"message": "unhandled exception in a task the run left behind",
                                         "exception": task.exception(), "task": task})


def _put_back(loop: asyncio.AbstractEventLoop) -> None:
    if not loop.is_closed():
        with _lock:
            if len(_idle) < MAX_IDLE:
                _idle.append(loop)
                return
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
