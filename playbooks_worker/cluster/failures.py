"""Redis failing under a running program is the store's failure, not the program's (errors.StoreUnavailable)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import redis

from playbooks_worker.errors import StoreUnavailable

F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def store_calls() -> Iterator[None]:
    """Redis errors inside become StoreUnavailable: playbook code cannot catch it, and no leaf records it."""
    try:
        yield
    except redis.RedisError as exc:
        raise StoreUnavailable(exc) from exc


def store_call(function: F) -> F:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with store_calls():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
