"""`playbooks run PROGRAM.pb [--resume [RUN_ID]] [--from-checkpoint ID] [--input TEXT]… [-v] [--name VALUE…]`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Any

import click

from playbooks_cli.common import config_option, handle_errors, load_settings, status
from playbooks_cli.console import ConsoleIO
from playbooks_worker.messages import failure_lines


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("program", metavar="PROGRAM.pb")
@click.option("--resume", "resume", is_flag=False, flag_value="", default=None, metavar="[RUN_ID]",
              help="Continue the newest unfinished run of PROGRAM (or RUN_ID) from its last checkpoint.")
@click.option("--from-checkpoint", "from_checkpoint", metavar="ID",
              help="Start a new run from checkpoint ID (later checkpoints stay with the old run).")
@click.option("--input", "inputs", multiple=True, metavar="TEXT",
              help="Answer to give the next time the program asks the user (repeatable); then stdin.")
@click.option("--detach", is_flag=True, help="Cluster mode: submit the run and return its id.")
@click.option("--broker", metavar="URL", help="Cluster mode: the Celery broker [env var: PLAYBOOKS_BROKER_URL].")
@config_option
@click.option("-v", "--verbose", is_flag=True, help="Print each checkpoint as it is saved or replayed.")
@click.option("--snoop", is_flag=True, help="Show messages between agents (on stderr).")
@click.option("--json", "as_json", is_flag=True,
              help="Print output events and the final outcome as JSON lines on stdout.")
@click.pass_context
@handle_errors
def run(ctx: click.Context, program: str, resume: str | None, from_checkpoint: str | None,
        inputs: tuple[str, ...], detach: bool, broker: str | None, config_file: str | None,
        verbose: bool, snoop: bool, as_json: bool) -> None:
    """Run PROGRAM.pb; with --resume, continue from its last checkpoint.

    Options after PROGRAM.pb that are not listed here are the entry playbook's arguments
    (`playbooks run greet.pb --name Ada`). Exit codes: 0 completed, 1 the program failed,
    2 bad usage, configuration or program, 3 waiting for input, 130 interrupted.
    """
    from playbooks_worker.program import load_program
    from playbooks_worker.runner import LocalRunner

    settings = load_settings(config_file, {"cluster.broker_url": broker} if broker else None)
    status(f"Loading playbooks from: {[program]}")
    if resume is not None and from_checkpoint:
        raise click.UsageError("use either --resume or --from-checkpoint, not both")
    if settings.cluster_mode:
        parsed = load_program(program)
        sys.exit(run_on_cluster(settings, parsed, program, entry_arguments(parsed, ctx.args), resume,
                                from_checkpoint, inputs, detach, as_json, snoop))
    if detach:
        raise click.UsageError("--detach needs cluster mode: set [cluster] broker_url or PLAYBOOKS_BROKER_URL")
    if (resume is not None or from_checkpoint) and not settings.durability.enabled:
        status("⚠️  Resume requested but durability not enabled")
        status("   Set durability.enabled=true in playbooks.toml")
        sys.exit(2)

    parsed = load_program(program)
    args = entry_arguments(parsed, ctx.args)
    from playbooks_worker.llm.provider import require_llm

    require_llm(parsed, settings)
    again = f"playbooks run {program} --resume"
    io = ConsoleIO(inputs=inputs, verbose=verbose, answer_hint=f"answer with: {again} --input 'your answer'",
                   json_events=as_json, snoop=snoop)
    runner = LocalRunner(settings, io)
    if resume is None and not from_checkpoint:
        status("Starting execution...")
    from playbooks_cli.statusline import StatusLine

    io.line = StatusLine.for_terminal()  # None when stderr is not a terminal

    async def go() -> Any:
        if from_checkpoint:
            return await runner.fork(parsed, from_checkpoint)
        if resume is not None:
            return await runner.resume(parsed, resume or None, args)
        return await runner.start(parsed, args)

    try:
        with io.line or contextlib.nullcontext():
            outcome = asyncio.run(go())
    except KeyboardInterrupt:
        status(f"⏹️  Interrupted. Resume with: {again}")
        sys.exit(130)
    io.finish_resume_lines()
    run_id = outcome.run.run_id
    if outcome.status == "succeeded":
        status("Execution complete ✅")
    elif outcome.status == "waiting":
        status(f"⏸️  Run {run_id} is waiting for input from user and none is left.")
        status(f"   Answer with: {again} --input 'your answer'")
    elif outcome.status == "interrupted":
        status(f"⏹️  Interrupted. Resume with: {again}" if settings.durability.enabled else "⏹️  Interrupted.")
    else:
        for line in failure_lines(outcome.error, parsed.sources):
            status(line)
        if settings.durability.enabled:
            status(f"   Fix the problem, then continue from the last checkpoint: {again}")
    if as_json:
        io.deliver({"type": "end", "run_id": run_id, "state": outcome.status, "exit_code": outcome.exit_code,
                    "result": outcome.run.result, "error": None if outcome.error is None else str(outcome.error)})
    sys.exit(outcome.exit_code)


def run_on_cluster(settings: Any, program: Any, display: str, args: dict[str, Any], resume: str | None,
                   from_checkpoint: str | None, inputs: tuple[str, ...], detach: bool, as_json: bool = False,
                   snoop: bool = False) -> int:
    """Submit (or resubmit) the run to the cluster's queue and follow it; returns the exit code."""
    from playbooks_cli.cluster import follow
    from playbooks_worker.cluster.client import ClusterClient
    from playbooks_worker.config import redact_url

    client = ClusterClient(settings)
    if from_checkpoint:
        run = client.fork(program, display, from_checkpoint)
        assert run.parent is not None
        status(f"🔀 Forked run {run.run_id} from checkpoint {from_checkpoint} (run {run.parent['run_id']} keeps "
               "its later checkpoints)")
    else:
        found = None
        if resume is not None:
            found = client.store.get(resume) if resume else client.find_resumable(program)
            if found is None:
                status(f"⚠️  No checkpoints found for {display}: starting from the beginning")
        if found is not None:
            run = found
            status(f"🔄 Resuming run {run.run_id} ({client.resume(run, program)})")
        else:
            run = client.submit(program, display, args)
            status(f"📤 Submitted run {run.run_id} to queue {settings.cluster.queue!r} on "
                   f"{redact_url(settings.cluster.broker_url)}")
    if detach:
        click.echo(json.dumps({"run_id": run.run_id, "state": run.state}) if as_json else run.run_id)
        status(f"   Follow it with: playbooks attach {run.run_id}")
        return 0
    return follow(client, run.run_id, inputs, as_json=as_json, snoop=snoop)


def entry_arguments(program: Any, extra: list[str]) -> dict[str, Any]:
    """`--name Ada` after the program → keyword arguments of the entry playbook, converted by annotation."""
    entries = program.entry_points()
    playbook = entries[0][1] if entries else None
    params = {p.name: p for p in playbook.params} if playbook else {}
    values: dict[str, Any] = {}
    i = 0
    while i < len(extra):
        token = extra[i]
        if not token.startswith("--") or token == "--":
            raise click.UsageError(f"unexpected argument {token!r}")
        name, has_value, value = token[2:].partition("=")
        key = name.replace("-", "_")
        if key not in params:
            takes = ", ".join(f"--{p}" for p in params) or "no arguments"
            where = f"entry playbook {playbook.name} takes {takes}" if playbook else "the program has no entry"
            raise click.UsageError(f"no such option: --{name} ({where})")
        if not has_value:
            if i + 1 < len(extra) and not extra[i + 1].startswith("--"):
                value = extra[i + 1]
                i += 1
            else:
                value = "true"
        values[key] = _convert(value, params[key].annotation, name)
        i += 1
    missing = [p.name for p in params.values() if p.default is None and p.name not in values]
    if missing and playbook is not None:
        raise click.UsageError(f"missing option --{missing[0]} (required by entry playbook {playbook.name})")
    return values


def _convert(value: str, annotation: str | None, name: str) -> Any:
    kind = (annotation or "").strip()
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
    except ValueError:
        raise click.UsageError(f"--{name} must be {'an integer' if kind == 'int' else 'a number'}, "
                               f"not {value!r}") from None
    if kind == "bool":
        lowered = value.lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise click.UsageError(f"--{name} must be true or false, not {value!r}")
        return lowered in ("true", "1", "yes")
    return value
