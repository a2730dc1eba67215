"""Cluster mode: Celery workers executing runs whose checkpoints live in Redis.

`celery -A playbooks_worker.cluster worker` finds the app here; `playbooks worker` starts the same app.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Built on first use, so importing the package (for keys, scripts) needs no settings.
    if name in ("app", "celery"):
        from playbooks_worker.cluster.app import app_for, current_settings

        return app_for(current_settings())
    raise AttributeError(name)
