"""`playbooks checkpoints RUN_ID|AGENT_ID` and `playbooks inspect CHECKPOINT_ID`."""

from __future__ import annotations

import asyncio
import reprlib
import time
from typing import Any

import click

from playbooks_cli.common import (
    backend,
    broker_option,
    config_option,
    handle_errors,
    json_option,
    print_json,
    settings_from,
)
from playbooks_worker.messages import short


def _runner(config_file: str | None, broker: str | None) -> Any:
    return backend(settings_from(config_file, broker))


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _value(value: Any, width: int = 200) -> str:
    text = reprlib.Repr()
    text.maxstring = width
    text.maxother = width
    return text.repr(value)


@click.command()
@click.argument("target", metavar="RUN_ID|AGENT_ID")
@config_option
@broker_option
@json_option
@handle_errors
def checkpoints(target: str, config_file: str | None, broker: str | None, as_json: bool) -> None:
    """List the checkpoints of a run (every agent) or of one agent, oldest first."""
    from playbooks_worker.errors import RunNotFound
    from playbooks_worker.runs import valid_records

    runner = _runner(config_file, broker)
    agents = runner.agent_ids(target)
    attempts = []
    if agents:
        attempts = runner.runs.get(target).attempts
    elif runner.provider.ids_sync(target):
        agents = [target]
    else:
        raise RunNotFound(f"no run or agent {target!r} has checkpoints under {runner.settings.durability.storage_path}",
                          hint="'playbooks runs' lists runs; 'playbooks status RUN_ID' lists a run's agents")
    rows = []
    for agent_id in agents:
        records = runner.provider.read_journal_sync(agent_id)
        replayable = {r["checkpoint_id"] for r in valid_records(records, attempts)} if attempts else None
        for record in records:
            meta = record["metadata"]
            rows.append({
                "checkpoint_id": record["checkpoint_id"], "agent_id": agent_id, "counter": meta["counter"],
                "kind": meta["kind"], "name": meta["name"], "call_path": meta["call_path"],
                "statement": meta["statement"], "file": meta["file"], "line": meta["line"],
                "timestamp": meta["timestamp"], "attempt": meta.get("attempt"),
                "replayable": replayable is None or record["checkpoint_id"] in replayable,
                "failed": record["error"] is not None,
            })
    if as_json:
        print_json(rows)
        return
    for row in rows:
        flags = (" ✗ raised" if row["failed"] else "") + ("" if row["replayable"] else " (discarded)")
        click.echo(f"{row['checkpoint_id']:<40} {_when(row['timestamp'])}  {row['file']}:{row['line']:<5} "
                   f"{short(row['statement'], 50)}{flags}")


@click.command()
@click.argument("checkpoint_id")
@config_option
@broker_option
@json_option
@handle_errors
def inspect(checkpoint_id: str, config_file: str | None, broker: str | None, as_json: bool) -> None:
    """Show a checkpoint: its statement, recorded value, and the variables as of it."""
    from playbooks_worker.inspection import inspect_checkpoint

    view = asyncio.run(inspect_checkpoint(_runner(config_file, broker), checkpoint_id))
    record, meta = view.record, view.record["metadata"]
    if as_json:
        print_json({
            "checkpoint_id": record["checkpoint_id"], "metadata": meta,
            "result": _value(record["result"], 10_000),
            "error": None if record["error"] is None else repr(record["error"]),
            "state_writes": {k: _value(v, 10_000) for k, v in record["state_writes"].items()},
            "frames": [{**f, "variables": {k: _value(v, 10_000) for k, v in f["variables"].items()}}
                       for f in view.frames],
            "state": {a: {k: _value(v, 10_000) for k, v in s.items()} for a, s in view.state.items()},
            "variables_error": view.variables_error,
        })
        return
    click.echo(f"Checkpoint   {record['checkpoint_id']}  (#{meta['counter']}, call path {meta['call_path']})")
    click.echo(f"Agent        {meta['execution_id']}   run {meta.get('run_id')}, attempt {meta.get('attempt')}")
    click.echo(f"Statement    {meta['statement']}   ({meta['file']}:{meta['line']})")
    took = f", took {meta['duration_ms']} ms" if meta.get("duration_ms") is not None else ""
    click.echo(f"Call         {meta['kind']} {meta['name']} at {_when(meta['timestamp'])}{took}")
    if record["error"] is not None:
        click.echo(f"Raised       {record['error']!r}")
    elif meta["kind"] == "llm" and isinstance(record["result"], dict):
        answer = record["result"]
        usage = answer.get("usage") or {}
        click.echo(f"Model        {answer.get('model')}, {usage.get('prompt_tokens', '?')} prompt + "
                   f"{usage.get('completion_tokens', '?')} completion tokens, {answer.get('latency_ms')} ms")
        click.echo("Response")
        for line in str(answer.get("response", "")).splitlines():
            click.echo(f"  | {line}")
    else:
        click.echo(f"Value        {_value(record['result'])}")
    for name, value in record["state_writes"].items():
        click.echo(f"State write  {name} = {_value(value)}")
    if view.variables_error:
        click.echo(f"Variables    unavailable: {view.variables_error}")
        return
    click.echo("Variables as of this checkpoint:")
    for frame in view.frames:
        click.echo(f"  in {frame['playbook']} ({frame['file']}:{frame['line']})")
        for name, value in frame["variables"].items():
            click.echo(f"    {name} = {_value(value)}")
    for agent_id, state in view.state.items():
        if state:
            click.echo(f"  state of {agent_id}")
            for name, value in state.items():
                click.echo(f"    {name} = {_value(value)}")
