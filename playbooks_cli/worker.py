"""`playbooks worker`: start a Celery worker that executes runs."""

from __future__ import annotations

import os
import socket

import click

from playbooks_cli.common import abort, broker_option, config_option, handle_errors, settings_from


@click.command()
@click.option("-c", "--concurrency", type=click.IntRange(1), default=50, show_default=True,
              help="Runs executed at once (threads: a run waiting on I/O holds a thread, not a CPU).")
@click.option("-Q", "--queues", default=None, metavar="Q[,Q…]", help="Queues to consume [default: [cluster] queue].")
@click.option("-l", "--loglevel", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.option("-P", "--pool", default="threads", show_default=True,
              type=click.Choice(["threads", "prefork", "solo"]),
              help="prefork: a process per run slot (CPU-heavy tools); threads: many waiting runs per process.")
@click.option("-n", "--hostname", default=None, help="Worker name [default: playbooks@HOST-PID].")
@config_option
@broker_option
@handle_errors
def worker(concurrency: int, queues: str | None, loglevel: str, pool: str, hostname: str | None,
           config_file: str | None, broker: str | None) -> None:
    """Start a worker: it executes runs from the queue and fails over runs of dead workers.

    \b
    Needs PLAYBOOKS_SECRET_KEY (the same on every worker and client) and a broker:
      PLAYBOOKS_BROKER_URL=redis://localhost:6379/0 PLAYBOOKS_SECRET_KEY=… playbooks worker
    SIGTERM hands running runs off to other workers at their next await, then exits.
    """
    settings = settings_from(config_file, broker)
    if not os.environ.get("PLAYBOOKS_SECRET_KEY"):
        abort("workers need PLAYBOOKS_SECRET_KEY: the HMAC key that signs checkpoints, the same on every "
              "worker and client",
              'generate one: export PLAYBOOKS_SECRET_KEY=$(python -c "import secrets; print(secrets.token_hex(32))")')
    if not settings.cluster_mode:
        abort("no broker configured", "set [cluster] broker_url, PLAYBOOKS_BROKER_URL or --broker")
    from playbooks_worker.checkpoints.signing import load_secret_key

    load_secret_key(create=False)  # a key that cannot sign would fail every task after acking it: refuse now

    from playbooks_worker.cluster.app import app_for, configure
    from playbooks_worker.cluster.connection import check_reachable, size_pool

    size_pool(concurrency if pool == "threads" else 1)
    check_reachable(settings)
    configure(settings)
    app = app_for(settings)
    name = hostname or f"playbooks@{socket.gethostname()}-{os.getpid()}"
    app.worker_main([
        "worker", f"--concurrency={concurrency}", f"--pool={pool}", f"--loglevel={loglevel.upper()}",
        f"--queues={queues or settings.cluster.queue}", f"--hostname={name}",
        "--without-mingle", "--without-gossip",  # each costs a second at start-up; leases replace both
    ])
