"""The Celery task: a thin wrapper; the work is in executor.py."""

from __future__ import annotations

from celery import shared_task

from playbooks_worker.cluster.app import MAX_REQUEUES_ON_WORKER_LOST, TASK_NAME, current_settings


@shared_task(name=TASK_NAME, acks_late=True, max_retries=MAX_REQUEUES_ON_WORKER_LOST, default_retry_delay=0,
             ignore_result=True)
def execute_run(run_id: str) -> str:
    from playbooks_worker.cluster.executor import Executor

    return Executor.get(current_settings()).execute(run_id)
