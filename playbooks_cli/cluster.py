"""Cluster-mode commands: follow a run's events (`run`, `attach`), answer it (`send`), stop it (`cancel`)."""

from __future__ import annotations

import collections
import contextlib
import json
import sys
from collections.abc import Iterable
from typing import Any

import click

from playbooks_cli.common import (
    broker_option,
    config_option,
    handle_errors,
    json_option,
    print_json,
    settings_from,
    status,
)


def _client(config_file: str | None, broker: str | None) -> Any:
    from playbooks_worker.cluster.client import ClusterClient

    settings = settings_from(config_file, broker)
    if not settings.cluster_mode:
        raise click.UsageError("no broker configured: set [cluster] broker_url, PLAYBOOKS_BROKER_URL or --broker")
    return ClusterClient(settings)


def follow(client: Any, run_id: str, inputs: Iterable[str] = (), as_json: bool = False, snoop: bool = False) -> int:
    """Print the run's output (stdout) and status (stderr) until it ends; answer input prompts.

    With `snoop`, messages between agents too (stderr, as a local run prints them). With `as_json` every event
    is a JSON line on stdout instead. Returns the exit code: 0 succeeded, 1 failed or cancelled, 3 waiting for
    input that cannot come. On a terminal, a live status line.
    """
    with _status_line(client, run_id) or contextlib.nullcontext():
        return _follow(client, run_id, inputs, as_json, snoop)


def _status_line(client: Any, run_id: str) -> Any:
    """The live status line (stderr a terminal): checkpoints and the latest step, read from Redis."""
    from playbooks_cli.statusline import StatusLine

    line = StatusLine.for_terminal()
    if line is None:
        return None
    import time

    from playbooks_worker.checkpoints.signing import load_secret_key
    from playbooks_worker.cluster.progress import RunProgress

    try:
        key: bytes | None = load_secret_key(create=False)
    except Exception:  # no key on this client: the line shows no step names
        key = None
    progress = RunProgress(client.client, client.keys, run_id, key)

    def poll() -> None:
        checkpoints, step = progress.poll()
        line.update(step=step, checkpoints=checkpoints)

    line.poll = poll
    line.started -= max(0.0, time.time() - client.store.get(run_id).created_at)  # elapsed since submitted
    return line


def _follow(client: Any, run_id: str, inputs: Iterable[str], as_json: bool, snoop: bool) -> int:
    answers = collections.deque(inputs)
    for event in client.events(run_id):
        kind = event.get("type")
        if as_json and (kind != "end" or _still(client, run_id, event.get("state"))):
            click.echo(json.dumps({**event, "run_id": run_id}, ensure_ascii=False))
            sys.stdout.flush()
        if kind == "say" and not as_json:
            click.echo(event["message"])
            sys.stdout.flush()
        elif kind == "status" and not as_json:
            status(event["text"])
        elif kind == "message" and snoop and not as_json:
            status(snoop_line(event))
        elif kind == "end":
            state = event.get("state")
            if not _still(client, run_id, state):
                continue  # an earlier end (waiting, failed) the run has moved on from: read on
            if state == "waiting":
                answer = _next_answer(answers)
                if answer is not None:
                    client.send(run_id, answer)
                    continue
            if not as_json:
                for line in event.get("lines", []):
                    status(line)
                if event.get("hint"):
                    status(f"   {event['hint']}")
            return {"succeeded": 0, "waiting": 3}.get(state, 1)
    return 1


def snoop_line(event: dict[str, Any]) -> str:
    """A message between agents, in the line format of a local run's --snoop (console.py)."""
    from playbooks_worker.messages import short

    return f"📨 {event['from']} → {event['to']}: {short(str(event['text']), 200)}"


def _still(client: Any, run_id: str, state: str | None) -> bool:
    """Is the run still in the state this end event announced? (`attach` reads old events too.)"""
    run = client.store.get(run_id)
    if run.state != state:
        return False
    return state != "waiting" or not client.client.llen(client.keys.inbox(run_id))


def _next_answer(answers: collections.deque[str]) -> str | None:
    if answers:
        return answers.popleft()
    stdin = sys.stdin
    if stdin is None or stdin.closed:
        return None
    if stdin.isatty():
        from playbooks_cli.statusline import StatusLine

        try:
            with StatusLine.pausing():
                return input("User: ")
        except EOFError:
            return None
    line = stdin.readline()
    return line.rstrip("\n") if line else None


@click.command()
@click.argument("run_id")
@click.option("--input", "inputs", multiple=True, metavar="TEXT", help="Answers for the run's questions.")
@click.option("--snoop", is_flag=True, help="Show messages between agents (on stderr).")
@config_option
@broker_option
@json_option
@handle_errors
def attach(run_id: str, inputs: tuple[str, ...], snoop: bool, config_file: str | None, broker: str | None,
           as_json: bool) -> None:
    """Follow a cluster run: its output so far, then live, until it ends."""
    client = _client(config_file, broker)
    client.store.get(run_id)
    sys.exit(follow(client, run_id, inputs, as_json=as_json, snoop=snoop))


@click.command()
@click.argument("run_id")
@click.argument("text")
@config_option
@broker_option
@json_option
@handle_errors
def send(run_id: str, text: str, config_file: str | None, broker: str | None, as_json: bool) -> None:
    """Answer a run that waits for user input (it is queued again if it had stopped to wait)."""
    woke = _client(config_file, broker).send(run_id, text)
    if as_json:
        print_json({"run_id": run_id, "sent": True, "requeued": woke})
        return
    status(f"✉️  Sent to run {run_id}" + (": it continues on the next free worker" if woke else ""))


@click.command()
@click.argument("run_id")
@config_option
@broker_option
@json_option
@handle_errors
def cancel(run_id: str, config_file: str | None, broker: str | None, as_json: bool) -> None:
    """Stop a run: now if it is queued or waiting, at its next await if it is running."""
    state = _client(config_file, broker).cancel(run_id)
    if as_json:
        print_json({"run_id": run_id, "state": state})
        return
    messages = {"cancelled": f"⏹️  Run {run_id} cancelled",
                "cancelling": f"⏹️  Run {run_id} stops at its next await"}
    status(messages.get(state, f"Run {run_id} is {state}"))
