"""`playbooks send` and `playbooks cancel` in-process (CliRunner) against fakeredis: exact output, exit codes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cluster_helpers import Enqueued, StoreFactory, new_run

from playbooks_cli.main import cli
from playbooks_worker.cluster import client as client_module

RunCli = Callable[..., Result]


@pytest.fixture
def run_cli(client, enqueued: Enqueued, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunCli:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(client_module, "check_reachable", lambda settings: client)
    monkeypatch.setattr(client_module, "enqueue_run", lambda run_id, settings: enqueued.append(run_id))

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env={"PLAYBOOKS_BROKER_URL": "redis://fake:6379/0"},
                                  catch_exceptions=False)

    return run


def test_cancel_a_queued_run(run_cli: RunCli, worker_store: StoreFactory) -> None:
    worker_store().create(new_run("r1"))

    result = run_cli("cancel", "r1")

    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "⏹️  Run r1 cancelled\n")


def test_cancel_a_running_run(run_cli: RunCli, worker_store: StoreFactory) -> None:
    store = worker_store()
    store.create(new_run("r1"))
    store.acquire("r1")

    result = run_cli("cancel", "r1")

    assert (result.exit_code, result.stderr) == (0, "⏹️  Run r1 stops at its next await\n")


def test_cancel_a_finished_run(run_cli: RunCli, worker_store: StoreFactory) -> None:
    worker_store().create(new_run("r1", state="succeeded"))

    result = run_cli("cancel", "r1")

    assert (result.exit_code, result.stderr) == (0, "Run r1 is already succeeded\n")


def test_cancel_an_already_cancelled_run_says_so(run_cli: RunCli, worker_store: StoreFactory) -> None:
    worker_store().create(new_run("r1", state="cancelled"))

    result = run_cli("cancel", "r1")

    assert (result.exit_code, result.stderr) == (0, "Run r1 is already cancelled\n")


def test_cancel_an_unknown_run(run_cli: RunCli) -> None:
    result = run_cli("cancel", "nope")

    assert result.exit_code == 2
    assert result.stderr.startswith("❌ no run 'nope' in Redis (prefix 'pbw')\n")


def test_send_to_a_waiting_run(run_cli: RunCli, worker_store: StoreFactory, enqueued: Enqueued) -> None:
    worker_store().create(new_run("r1", state="waiting"))

    result = run_cli("send", "r1", "Ada")

    assert (result.exit_code, result.stderr) == (0, "✉️  Sent to run r1: it continues on the next free worker\n")
    assert enqueued == ["r1"]
