"""The Celery app: JSON messages carrying a run id, acks-late, prefetch 1 (DESIGN §5).

Celery is only the transport here. Which worker owns a run is decided by the run's lease and epoch
(store.py); Celery's redelivery is a backstop, so its visibility timeout is long and its keys live under
their own prefix.
"""

from __future__ import annotations

import functools
import logging
import os
import ssl
import sys
from typing import Any

from celery import Celery, signals

from playbooks_worker.cluster.keys import Keys
from playbooks_worker.config import Settings, load_settings

TASK_NAME = "playbooks.execute_run"
VISIBILITY_TIMEOUT_S = 12 * 3600  # the backstop only: leases fail runs over in seconds
MAX_REQUEUES_ON_WORKER_LOST = 5  # a run that keeps killing its pool process stops being retried

_configured: Settings | None = None


def configure(settings: Settings) -> None:
    """The settings this worker process (and the pool processes it forks) use."""
    global _configured
    _configured = settings


def current_settings() -> Settings:
    global _configured
    if _configured is None:
        _configured = load_settings(os.environ.get("PLAYBOOKS_CONFIG") or None)
    return _configured


def make_app(settings: Settings) -> Celery:
    keys = Keys(settings.cluster.key_prefix)
    app = Celery("playbooks_worker", broker=settings.cluster.broker_url or "redis://localhost:6379/0",
                 include=["playbooks_worker.cluster.tasks"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],  # never pickle: anyone who can write the queue could run code
        result_serializer="json",
        task_ignore_result=True,  # the run record is the result
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_retry_on_worker_lost=True,  # Celery 5.7: requeue when a pool process dies, bounded by max_retries
        task_default_queue=settings.cluster.queue,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S,
                                  "global_keyprefix": keys.celery_prefix},
        broker_connection_retry_on_startup=True,
        # A worker cut off from Redis stops its tasks instead of letting kombu hand them to another worker
        # while they still run; fencing makes either safe, this makes it cheap.
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
    )
    if app.conf.broker_url.startswith("rediss://"):
        # kombu's default for a rediss:// URL without `ssl_cert_reqs` is CERT_NONE ("insecure SSL behaviour"),
        # while redis-py, which the checkpoint store uses, verifies the server against the system CAs. Verify on
        # both; the URL's own `ssl_*` parameters (`ssl_ca_certs=…`, or `ssl_cert_reqs=none` on purpose) still
        # win, because kombu lets the URL override `broker_use_ssl`.
        app.conf.broker_use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    return app


@functools.lru_cache(maxsize=4)
def _app_for(broker_url: str, prefix: str, queue: str) -> Celery:
    return make_app(current_settings() if not broker_url else _settings_with(broker_url, prefix, queue))


def _settings_with(broker_url: str, prefix: str, queue: str) -> Settings:
    import dataclasses

    base = current_settings()
    cluster = dataclasses.replace(base.cluster, broker_url=broker_url, key_prefix=prefix, queue=queue)
    return dataclasses.replace(base, cluster=cluster)


def app_for(settings: Settings) -> Celery:
    return _app_for(settings.cluster.broker_url, settings.cluster.key_prefix, settings.cluster.queue)


def enqueue_run(run_id: str, settings: Settings) -> None:
    app_for(settings).send_task(TASK_NAME, args=[run_id], queue=settings.cluster.queue)


# -- worker lifecycle --------------------------------------------------------------------------------


@signals.worker_init.connect
def _refuse_without_key(**_: Any) -> None:
    if os.environ.get("PLAYBOOKS_SECRET_KEY"):
        from playbooks_worker.checkpoints.signing import load_secret_key
        from playbooks_worker.errors import SecretKeyError

        try:
            load_secret_key(create=False)
        except SecretKeyError as exc:
            sys.stderr.write(f"❌ {exc.message}\n")
            sys.exit(2)
    else:
        sys.stderr.write(
            "❌ workers need PLAYBOOKS_SECRET_KEY (the HMAC key that signs checkpoints; the same on every worker "
            "and client)\n   generate one: export PLAYBOOKS_SECRET_KEY=$(python -c \"import secrets; "
            "print(secrets.token_hex(32))\")\n")
        sys.exit(2)


@signals.worker_init.connect
def _survive_broker_restarts(**_: Any) -> None:
    """Keep the worker alive when the broker restarts while tasks run.

    Celery 5.7.0 drops a lost broker connection after `collect()` has cleared it. Whatever then touches that
    connection's channel — restoring its unacked messages as it closes, or acking a task that finishes later —
    reaches kombu's `_connparams` with no client and raises AttributeError, an "Unrecoverable error" that ends
    the worker: at nearly every Redis restart while a task ran (bench/chaos.py). Raised as a connection error
    instead, it is what both callers already expect and ignore. Neither the restore nor that ack is needed then:
    a run whose task stopped is re-enqueued by the lease reapers within seconds, and a message left unacked
    comes back after the visibility timeout, where the duplicate is dropped. (A connection lost while Redis
    stays up still restores its unacked messages at once, as before: a copy, dropped by the lease.)"""
    import redis
    from kombu.transport import redis as kombu_redis

    channel = kombu_redis.Channel
    if getattr(channel._connparams, "__pbw__", False):
        return
    original = channel._connparams

    def _connparams(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.connection is None or getattr(self.connection, "client", None) is None:
            raise redis.ConnectionError("the broker connection was closed")
        return original(self, *args, **kwargs)

    _connparams.__pbw__ = True  # type: ignore[attr-defined]
    channel._connparams = _connparams


@signals.worker_ready.connect
def _start_background(**_: Any) -> None:
    from playbooks_worker.cluster.executor import Executor

    Executor.get(current_settings())


@signals.worker_shutting_down.connect
def _hand_off(**_: Any) -> None:
    """SIGTERM: every run stops at its next await and continues on another worker (DESIGN §5 handoff)."""
    from playbooks_worker.cluster.executor import Executor
    from playbooks_worker.cluster.heartbeat import heartbeat

    Executor.draining.set()
    try:
        executor = Executor.get(current_settings())
        executor.client.set(executor.keys.draining(executor.store.owner), "1", ex=3600)
        heartbeat(executor)  # stop local runs now rather than at the next beat
    except Exception as exc:
        logging.getLogger("playbooks_worker.cluster").warning("handoff: %s", exc)
