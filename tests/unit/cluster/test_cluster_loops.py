"""Event loops reused across tasks (cluster/loops.py): what asyncio.run guaranteed still holds."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from playbooks_worker.cluster import loops

seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")


def test_a_loop_is_reused_and_is_nobodys_current_loop_between_tasks() -> None:
    async def current() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    first = loops.run(current())
    second = loops.run(current())

    assert first is second
    assert not first.is_closed()
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_tasks_a_run_leaves_behind_are_cancelled_before_the_next() -> None:
    left: list[asyncio.Task[None]] = []

    async def leave_one() -> None:
        left.append(asyncio.ensure_future(asyncio.sleep(3600)))

    loops.run(leave_one())

    assert left[0].cancelled()


def test_each_task_starts_in_a_fresh_copy_of_the_callers_context() -> None:
    async def set_and_read() -> str:
        before = seen.get()
        seen.set("set by the task")
        return before

    assert loops.run(set_and_read()) == "unset"
    assert loops.run(set_and_read()) == "unset"
    assert seen.get() == "unset"


def test_an_exception_propagates_and_the_loop_stays_usable() -> None:
    async def fail() -> None:
        raise ValueError("boom")

    async def ok() -> int:
        return 1

    with pytest.raises(ValueError, match="boom"):
        loops.run(fail())
    assert loops.run(ok()) == 1


def test_threads_never_share_a_loop_at_once() -> None:
    running: set[int] = set()
    clashes: list[int] = []
    barrier = threading.Barrier(4)

    async def hold() -> None:
        loop_id = id(asyncio.get_running_loop())
        if loop_id in running:
            clashes.append(loop_id)
        running.add(loop_id)
        await asyncio.sleep(0.01)
        running.discard(loop_id)

    def work() -> None:
        barrier.wait()
        for _ in range(20):
            loops.run(hold())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert clashes == []
    assert len(loops._idle) <= loops.MAX_IDLE
