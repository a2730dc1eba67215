"""`playbooks top [--interval S] [--once]`: a live view of runs, and of the cluster's workers."""

from __future__ import annotations

import time
from typing import Any

import click

from playbooks_cli.common import backend, broker_option, config_option, handle_errors, settings_from
from playbooks_cli.runs import run_summary

ACTIVE = ("running", "running (lease expired)", "queued", "waiting", "interrupted")


def source(settings: Any) -> Any:
    """A function returning what one frame shows: runs (unfinished first, then newest) and the workers."""
    if settings.cluster_mode:
        from playbooks_worker.cluster.client import ClusterClient
        from playbooks_worker.config import redact_url

        client = ClusterClient(settings)
        store, workers, mode, where = client.store, client.workers, "cluster", redact_url(settings.cluster.broker_url)
    else:
        store, workers, mode, where = backend(settings).runs, list, "local", str(settings.durability.storage_path)

    def snapshot(limit: int = 30) -> dict[str, Any]:
        rows = [run_summary(r, store) for r in store.list()[: limit * 4]]
        rows.sort(key=lambda r: (r["state"] not in ACTIVE, -(r["updated_at"] or 0)))
        return {"mode": mode, "where": where, "runs": rows[:limit], "workers": workers()}

    return snapshot


@click.command()
@click.option("--interval", type=click.FloatRange(0.2), default=2.0, show_default=True, metavar="S",
              help="Seconds between refreshes.")
@click.option("--once", is_flag=True, help="Print one frame and exit (for scripts and tests).")
@click.option("--limit", type=click.IntRange(1), default=30, show_default=True, help="Runs shown at most.")
@config_option
@broker_option
@handle_errors
def top(interval: float, once: bool, limit: int, config_file: str | None, broker: str | None) -> None:
    """A live view of runs (state, worker, attempts, failovers, age) and of the cluster's workers."""
    from playbooks_cli.views import print_rich, top_frame

    snapshot = source(settings_from(config_file, broker))
    if once:
        print_rich(top_frame(snapshot(limit)))
        return
    from rich.live import Live

    with Live(top_frame(snapshot(limit)), auto_refresh=False, screen=False) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(top_frame(snapshot(limit)), refresh=True)
        except KeyboardInterrupt:
            pass
