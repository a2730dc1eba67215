"""`playbooks runs` and `playbooks status RUN_ID`."""

from __future__ import annotations

import sys
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


def shown_state(run: Any, store: Any) -> str:
    """`running` in the record but nobody executing it: interrupted (local) or failing over (cluster)."""
    if run.state != "running":
        return str(run.state)
    if hasattr(store, "is_locked"):
        return "running" if store.is_locked(run.run_id) else "interrupted"
    if run.spread:
        return "running"  # its agents hold leases of their own, not the run: `status` shows each
    return "running" if store.client.exists(store.keys.lease(run.run_id)) else "running (lease expired)"


def ago(timestamp: float) -> str:
    seconds = max(0, int(time.time() - timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def run_summary(run: Any, store: Any) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "state": shown_state(run, store),
        "program": run.program,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "attempts": len(run.attempts),
        "agents": run.agents,
        "error": run.error,
        "waiting_for": run.waiting_for,
        "parent": run.parent,
        "result": run.result,
        "worker": run.worker,
        "failovers": run.failovers,
        "handoffs": run.handoffs,
    }


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Include finished runs older than the newest 20.")
@config_option
@broker_option
@json_option
@handle_errors
def runs(show_all: bool, config_file: str | None, broker: str | None, as_json: bool) -> None:
    """List runs, newest first (local runs, or the cluster's with a broker configured)."""
    store = backend(settings_from(config_file, broker)).runs
    records = store.list()
    if not show_all:
        records = records[:20]
    rows = [run_summary(r, store) for r in records]
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("No runs yet: 'playbooks run PROGRAM.pb' starts one (with durability.enabled = true).")
        return
    if sys.stdout.isatty():
        from playbooks_cli.views import print_rich, runs_table

        print_rich(runs_table(rows))
        return
    click.echo(f"{'RUN':<14}{'STATE':<13}{'ATTEMPTS':<10}{'UPDATED':<12}PROGRAM")
    for row in rows:
        click.echo(f"{row['run_id']:<14}{row['state']:<13}{row['attempts']:<10}{ago(row['updated_at']):<12}"
                   f"{row['program']}")


FINISHED = ("succeeded", "failed", "cancelled")


def spread_agents(run: Any, store: Any) -> list[dict[str, Any]]:
    """Every agent of a spread run (agents it created too) with its own state, worker, what it waits for."""
    from playbooks_worker.cluster.spread import agent_rows

    rows = agent_rows(store.client, store.keys, run.run_id)
    for row in rows:
        if row["state"] in ("queued", "running") and not row["worker"]:
            if run.state in FINISHED:
                row["state"] = "stopped"  # the run ended (EndProgram, a failure, cancel) before this agent did
            elif row["state"] == "running":
                row["state"] = "running (lease expired)"  # its worker is gone: it fails over
    return rows or [dict(agent) for agent in run.agents]


@click.command()
@click.argument("run_id")
@config_option
@broker_option
@json_option
@handle_errors
def status(run_id: str, config_file: str | None, broker: str | None, as_json: bool) -> None:
    """Show one run: state, attempts, agents and their last checkpoints."""
    settings = settings_from(config_file, broker)
    runner = backend(settings)
    store, provider = runner.runs, runner.provider
    run = store.get(run_id)
    summary = run_summary(run, store)
    summary["attempt_log"] = [vars(a) for a in run.attempts]
    cluster = bool(settings.cluster_mode)
    if cluster:
        summary["spread"] = run.spread
        if run.spread:
            summary["agents"] = spread_agents(run, store)
    for agent in summary["agents"]:
        ids = provider.ids_sync(agent["agent_id"])
        agent["checkpoints"] = len(ids)
        agent["last_checkpoint"] = ids[-1] if ids else None
    if as_json:
        print_json(summary)
        return
    if sys.stdout.isatty():
        from playbooks_cli.views import print_rich, status_view

        print_rich(status_view(summary, cluster=cluster))
        return
    click.echo(f"Run       {run.run_id}  ({summary['state']})")
    click.echo(f"Program   {run.program}")
    if run.worker and summary["state"] == "running":
        click.echo(f"Worker    {run.worker}")
    if run.failovers or run.handoffs:
        click.echo(f"Moved     {run.failovers} failovers, {run.handoffs} handoffs")
    if run.parent:
        click.echo(f"Forked    from {run.parent['checkpoint_id']} of run {run.parent['run_id']}")
    if run.error:
        click.echo(f"Error     {run.error}")
    if run.state == "waiting":
        click.echo(f"Waiting   for input from {run.waiting_for or 'user'}")
    for attempt in run.attempts:
        ended = f", {attempt.outcome}" if attempt.outcome else ""
        click.echo(f"Attempt {attempt.number} on {attempt.host} pid {attempt.pid}, {ago(attempt.started_at)}{ended}")
    for agent in summary["agents"]:
        doing = f"{agent_phrase(summary, agent)}; " if cluster else ""
        click.echo(f"Agent     {agent['agent_id']} ({agent['klass']}): {doing}{agent['checkpoints']} checkpoints, "
                   f"last {agent['last_checkpoint']}")


def agent_phrase(summary: dict[str, Any], agent: dict[str, Any]) -> str:
    """`running on host:pid`, `waiting for message from agent pinger_1_…`, `done, 1 failover`."""
    from playbooks_cli.views import agent_view, waits_for_text

    view = agent_view(summary, agent)
    phrase = view["state"]
    if view["worker"]:
        phrase += f" on {view['worker']}"
    if view["waiting_for"]:
        # A running agent that waits still holds its worker (it reads its mailbox before it parks).
        phrase += f"{', waiting' if view['state'] == 'running' else ''} for {waits_for_text(view['waiting_for'])}"
    if view["failovers"]:
        phrase += f", {view['failovers']} failover{'s' if view['failovers'] != 1 else ''}"
    return phrase
