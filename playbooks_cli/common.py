"""What every command shares: settings, error reporting and exit codes."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from playbooks_worker.errors import PlaybooksError

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
