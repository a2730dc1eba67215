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
    # A plain try, not `store_calls()`: a checkpoint write is on every await, and a generator-based context
    # manager costs more than the try itself.
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except redis.RedisError as exc:
            raise StoreUnavailable(exc) from exc

    return wrapper  # type: ignore[return-value]
