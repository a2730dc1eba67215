"""`playbooks worker`: start a Celery worker that executes runs."""

from __future__ import annotations

import os
import socket
from typing import Any

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
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None, envvar="PLAYBOOKS_METRICS_PORT",
              show_envvar=True, metavar="PORT",
              help="Serve Prometheus metrics on http://0.0.0.0:PORT/metrics (prefork: see PROMETHEUS_MULTIPROC_DIR).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              envvar="PLAYBOOKS_LOG_FORMAT", show_envvar=True,
              help="json: one JSON object per line on stderr, with run_id, agent_id and checkpoint_id.")
@config_option
@broker_option
@handle_errors
def worker(concurrency: int, queues: str | None, loglevel: str, pool: str, hostname: str | None,
           metrics_port: int | None, log_format: str, config_file: str | None, broker: str | None) -> None:
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
    client = check_reachable(settings)
    configure(settings)
    app = app_for(settings)
    name = hostname or f"playbooks@{socket.gethostname()}-{os.getpid()}"
    serve_metrics_and_logs(settings, client, metrics_port, log_format, loglevel, name)
    app.worker_main([
        *(["--quiet"] if log_format == "json" else []),  # no banner on stdout: every line is JSON
        "worker", f"--concurrency={concurrency}", f"--pool={pool}", f"--loglevel={loglevel.upper()}",
        f"--queues={queues or settings.cluster.queue}", f"--hostname={name}",
        "--without-mingle", "--without-gossip",  # each costs a second at start-up; leases replace both
    ])


def serve_metrics_and_logs(settings: Any, client: Any, metrics_port: int | None, log_format: str, loglevel: str,
                           name: str) -> None:
    """Before Celery starts: the log format (Celery's own lines included) and the metrics endpoint."""
    import logging

    from playbooks_worker.cluster import worker_logs
    from playbooks_worker.config import redact_url

    worker_logs.use(log_format, loglevel)
    log = logging.getLogger("playbooks_worker.worker")
    if metrics_port is not None:
        from playbooks_worker import metrics
        from playbooks_worker.cluster.keys import Keys

        try:
            metrics.serve(metrics_port, redis_client=client, keys=Keys(settings.cluster.key_prefix))
        except OSError as exc:
            abort(f"cannot serve metrics on port {metrics_port}: {exc}", "choose another --metrics-port")
        log.info("metrics on http://0.0.0.0:%d/metrics", metrics_port)
    log.info("worker %s starting: broker %s, queue %r", name, redact_url(settings.cluster.broker_url),
             settings.cluster.queue)
