"""Log records that say which run they are about, as text or as JSON lines, with no secret in them.

- `ContextFilter` adds `run_id`, `agent_id` and `checkpoint_id` to every record that passes: from the
  record's own `extra=` when given, else from context variables — the run's, bound when an attempt starts
  (`bind_run`, called by the runner; on a worker also around each Celery task), the agent whose code is
  running (the runtime's `current_agent`), and the last checkpoint this task wrote (`wrote_checkpoint`).
  Context variables follow asyncio tasks and threads, so concurrent runs on one worker never mix theirs up.
- `RedactFilter` is the last line of defence: it masks `scheme://user:password@` and `?password=` in every
  message and traceback. Code that logs a URL should still pass it through `config.redact_url` first.
- `JsonFormatter`: one JSON object per line — time, level, logger, message, pid, then run_id, agent_id,
  checkpoint_id when known, and exception when there is one.

No Celery here: cluster/worker_logs.py routes Celery's own records through these.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from contextvars import ContextVar
from typing import Any

from playbooks_worker.config import redact_url as redact
from playbooks_worker.runtime.callpath import current_agent

run_id_var: ContextVar[str | None] = ContextVar("playbooks_log_run_id", default=None)
checkpoint_id_var: ContextVar[str | None] = ContextVar("playbooks_log_checkpoint_id", default=None)

FIELDS = ("run_id", "agent_id", "checkpoint_id")

_checkpoint_log = logging.getLogger("playbooks_worker.checkpoints")


def bind_run(run_id: str | None) -> None:
    """Records logged from here on, in this task or thread, are about `run_id` (None: about no run)."""
    run_id_var.set(run_id)
    checkpoint_id_var.set(None)


def wrote_checkpoint(checkpoint_id: str) -> None:
    """A checkpoint was written: later records of this task carry its id; at DEBUG, a line says so."""
    checkpoint_id_var.set(checkpoint_id)
    if _checkpoint_log.isEnabledFor(logging.DEBUG):
        _checkpoint_log.debug("checkpoint %s written", checkpoint_id)


# -- redaction -----------------------------------------------------------------------------------------------

class RedactFilter(logging.Filter):
    """Masks URL passwords in the message and the traceback before any handler formats the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


# -- context -------------------------------------------------------------------------------------------------


class ContextFilter(logging.Filter):
    """Adds run_id, agent_id and checkpoint_id (None when unknown) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "run_id", None) is None:
            record.run_id = run_id_var.get()
        if getattr(record, "agent_id", None) is None:
            agent = current_agent.get()
            record.agent_id = getattr(agent, "id", None)
        if getattr(record, "checkpoint_id", None) is None:
            record.checkpoint_id = checkpoint_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


def install(handler: logging.Handler) -> logging.Handler:
    """Give `handler` the context and redaction filters (once)."""
    if not any(isinstance(f, ContextFilter) for f in handler.filters):
        handler.addFilter(ContextFilter())
    if not any(isinstance(f, RedactFilter) for f in handler.filters):
        handler.addFilter(RedactFilter())
    return handler


def configure(log_format: str, level: str | int = "INFO", stream: Any = None) -> logging.Handler:
    """Route every record (the root logger's) to one stderr handler in `log_format` ("json" or "text")."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name("playbooks")
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"))
    install(handler)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "playbooks"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    logging.captureWarnings(True)  # warnings become records too: nothing on stderr escapes the format
    return handler
