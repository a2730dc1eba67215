"""`playbooks`: the entry point. Subcommands are imported only when used, so `playbooks --help` is instant."""

from __future__ import annotations

import importlib
from typing import Any

import click

COMMANDS = {
    "run": ("playbooks_cli.run", "run", "Run a program, or resume it from its last checkpoint."),
    "check": ("playbooks_cli.check", "check", "Parse and validate programs without running them."),
    "runs": ("playbooks_cli.runs", "runs", "List runs, newest first."),
    "status": ("playbooks_cli.runs", "status", "Show one run: state, attempts, agents, last checkpoint."),
    "top": ("playbooks_cli.top", "top", "A live view of runs and workers."),
    "checkpoints": ("playbooks_cli.checkpoints", "checkpoints", "List the checkpoints of a run or an agent."),
    "inspect": ("playbooks_cli.checkpoints", "inspect", "Show one checkpoint: statement, value, variables."),
    "clear": ("playbooks_cli.clear", "clear", "Delete checkpoints: of one run, or all of them."),
    "worker": ("playbooks_cli.worker", "worker", "Start a worker that executes runs (cluster mode)."),
    "attach": ("playbooks_cli.cluster", "attach", "Follow a cluster run's output until it ends."),
    "send": ("playbooks_cli.cluster", "send", "Answer a run that waits for user input."),
    "cancel": ("playbooks_cli.cluster", "cancel", "Stop a run."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[name]
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, _, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="playbooks-worker", prog_name="playbooks")
def cli() -> None:
    """Durable runtime for Playbooks programs: every await is a checkpoint.

    \b
      playbooks run blah.pb            run a program
      playbooks run blah.pb --resume   continue from the last checkpoint
    """


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv, prog_name="playbooks")
