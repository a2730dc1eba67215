"""`playbooks clear [RUN_ID…] [--all]`: delete checkpoints."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click

from playbooks_cli.common import abort, config_option, durable_settings, handle_errors, load_settings


@click.command()
@click.argument("run_ids", nargs=-1, metavar="[RUN_ID]...")
@click.option("--all", "everything", is_flag=True, help="Delete every checkpoint and run record.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@config_option
@handle_errors
def clear(run_ids: tuple[str, ...], everything: bool, yes: bool, config_file: str | None) -> None:
    """Delete the checkpoints of RUN_IDs, or with --all of every run (a fresh start)."""
    from playbooks_cli.console import ConsoleIO
    from playbooks_worker.runner import LocalRunner

    settings = load_settings(config_file)
    root = Path(settings.durability.storage_path)
    if not run_ids and not everything:
        abort("say which runs to clear, or --all", "'playbooks runs' lists them")
    if everything:
        if not yes and sys.stdin.isatty() and not click.confirm(f"Delete every checkpoint under {root}?"):
            sys.exit(1)
        removed = 0
        if root.is_dir():
            for entry in root.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry)
                    removed += 1
        click.echo(f"Cleared {root} ({removed} directories)", err=True)
        return
    runner = LocalRunner(durable_settings(settings), ConsoleIO())
    assert runner.runs is not None
    for run_id in run_ids:
        runner.runs.get(run_id)  # RunNotFound names the run
        runner.delete_run(run_id)
        click.echo(f"Cleared run {run_id}", err=True)
