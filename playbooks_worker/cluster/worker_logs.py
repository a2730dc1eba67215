"""A worker's logging: Celery's records and ours through one format, each tagged with its run (logs.py).

- `json`: Celery is told logging is taken care of (a `setup_logging` receiver), so it adds no handler of its
  own and redirects no stdout; every record — the worker's, the runtime's, Celery's, warnings — goes to one
  stderr handler writing JSON lines. The same receiver runs again in each prefork child.
- `text` (the default): Celery's own format, unchanged (tests and people read it); its handlers only get
  the redaction and context filters.

In both, a Celery task binds its run id (the task's one argument) before it starts and unbinds it after
Celery logged its end, so "Task playbooks.execute_run[…] succeeded in 2.1s: 'succeeded'" carries it too.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import signals

from playbooks_worker import logs
from playbooks_worker.cluster.app import TASK_NAME

_format = "text"
_level = "INFO"


def use(log_format: str, level: str) -> None:
    """Call before the worker starts (`playbooks worker --log-format`)."""
    global _format, _level
    _format, _level = log_format, level.upper()
    signals.task_prerun.connect(_bind_task_run, weak=False, dispatch_uid="pbw-log-bind")
    signals.task_postrun.connect(_unbind_task_run, weak=False, dispatch_uid="pbw-log-unbind")
    if log_format == "json":
        signals.setup_logging.connect(_setup_json, weak=False, dispatch_uid="pbw-log-json")
        logs.configure("json", _level)  # lines before Celery's set-up (connecting, errors) are JSON too
    else:
        signals.after_setup_logger.connect(_filter_handlers, weak=False, dispatch_uid="pbw-log-text")
        signals.after_setup_task_logger.connect(_filter_handlers, weak=False, dispatch_uid="pbw-log-text-task")


def _setup_json(loglevel: Any = None, **_: Any) -> None:
    logs.configure("json", loglevel or _level)


def _filter_handlers(logger: logging.Logger | None = None, **_: Any) -> None:
    for handler in logger.handlers if logger is not None else []:
        logs.install(handler)


def _bind_task_run(task: Any = None, args: Any = None, **_: Any) -> None:
    if getattr(task, "name", None) == TASK_NAME and args:
        logs.bind_run(str(args[0]))


def _unbind_task_run(**_: Any) -> None:
    logs.bind_run(None)
