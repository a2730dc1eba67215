"""What every command shares: settings, error reporting and exit codes."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from playbooks_worker.errors import PlaybooksError, StoreUnavailable

F = TypeVar("F", bound=Callable[..., Any])

config_option = click.option(
    "--config", "config_file", type=click.Path(dir_okay=False), default=None, metavar="FILE",
    help="Settings file (default: ./playbooks.toml). Keys can be overridden by PLAYBOOKS_<SECTION>__<KEY>.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def status(text: str) -> None:
    """A status line: stderr, so stdout carries only what the program says."""
    click.echo(text, err=True)


def abort(message: str, hint: str | None = None, code: int = 2) -> NoReturn:
    click.echo(f"❌ {message}", err=True)
    if hint:
        click.echo(f"   {hint}", err=True)
    sys.exit(code)


def handle_errors(function: F) -> F:
    """A user's mistake becomes a message and an exit code, never a traceback."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except PlaybooksError as exc:
            abort(exc.message, exc.hint, exc.exit_code)
        except StoreUnavailable as exc:
            abort(f"the checkpoint store failed: {exc}",
                  "the run stopped at its last checkpoint: once the store is back, continue it with --resume", 1)

    return wrapper  # type: ignore[return-value]


def load_settings(config_file: str | None, overrides: dict[str, Any] | None = None) -> Any:
    from playbooks_worker.config import load_settings as load

    return load(Path(config_file) if config_file else None, overrides=overrides)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def durable_settings(settings: Any) -> Any:
    """The settings with durability on: looking at or deleting checkpoints needs the store either way."""
    import dataclasses

    return dataclasses.replace(settings, durability=dataclasses.replace(settings.durability, enabled=True))


def backend(settings: Any) -> Any:
    """A Runner over where this configuration keeps runs: files locally, Redis in cluster mode.

    Commands that look at runs (runs, status, checkpoints, inspect, clear) use it, so they work the same
    against either.
    """
    from playbooks_cli.console import ConsoleIO

    if settings.cluster_mode or settings.durability.storage == "redis":
        from playbooks_worker.checkpoints.redis import RedisCheckpointProvider
        from playbooks_worker.checkpoints.signing import load_secret_key
        from playbooks_worker.cluster.connection import check_reachable
        from playbooks_worker.cluster.keys import Keys
        from playbooks_worker.cluster.store import RedisRunStore
        from playbooks_worker.runner import Runner

        client = check_reachable(settings)
        keys = Keys(settings.cluster.key_prefix)
        store = RedisRunStore(client, keys=keys, lease_seconds=settings.cluster.lease_seconds,
                              finished_ttl_s=settings.cluster.finished_ttl_s)
        provider = RedisCheckpointProvider(client, prefix=keys.prefix, secret_key=load_secret_key(create=False),
                                           max_size_mb=settings.durability.max_checkpoint_size_mb)
        if not settings.cluster_mode:  # local runs, Redis checkpoints: run records stay in files
            from playbooks_worker.runner import LocalRunner

            return LocalRunner(durable_settings(settings), ConsoleIO(), provider=provider)
        return Runner(settings, ConsoleIO(), provider, store)
    from playbooks_worker.runner import LocalRunner

    return LocalRunner(durable_settings(settings), ConsoleIO())


broker_option = click.option("--broker", metavar="URL", default=None,
                             help="Cluster mode: the broker (Redis) URL [env var: PLAYBOOKS_BROKER_URL].")


def settings_from(config_file: str | None, broker: str | None) -> Any:
    return load_settings(config_file, {"cluster.broker_url": broker} if broker else None)
