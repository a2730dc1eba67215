"""Bad configuration in cluster mode: a clear message, exit 2, no traceback, no secret in the output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cluster_support import Cluster, slow_program
from redis_fixtures import free_port


def no_secret_no_traceback(output: str) -> None:
    assert "s3cret" not in output
    assert "Traceback" not in output


@pytest.mark.parametrize("how", ["env", "--broker"])
def test_run_with_redis_unreachable_names_the_url_without_its_password(cluster: Cluster, how: str) -> None:
    cluster.write("x.pb", slow_program(cluster.effects_log, steps=1, delay_s=0))
    port = free_port()  # nothing listens there
    url = f"redis://:s3cret@127.0.0.1:{port}/0"

    if how == "env":
        result = cluster.pb("run", "x.pb", env={"PLAYBOOKS_BROKER_URL": url})
    else:
        result = cluster.pb("run", "x.pb", "--broker", url, env={"PLAYBOOKS_BROKER_URL": ""})

    assert result.returncode == 2, result
    assert f"❌ cannot reach Redis at redis://:***@127.0.0.1:{port}/0: " in result.stderr, result
    assert "   start Redis, or fix [cluster] broker_url / PLAYBOOKS_BROKER_URL" in result.err
    no_secret_no_traceback(result.stdout + result.stderr)
    assert result.stdout == ""
    assert cluster.effects() == []


def test_worker_with_redis_unreachable(cluster: Cluster) -> None:
    port = free_port()
    result = cluster.pb("worker", "-c", "1", env={"PLAYBOOKS_BROKER_URL": f"redis://:s3cret@127.0.0.1:{port}/0"})

    assert result.returncode == 2, result
    assert f"❌ cannot reach Redis at redis://:***@127.0.0.1:{port}/0: " in result.stderr, result
    no_secret_no_traceback(result.stdout + result.stderr)


def test_worker_without_a_secret_key_refuses_to_start(cluster: Cluster) -> None:
    result = cluster.pb("worker", "-c", "1", env={"PLAYBOOKS_SECRET_KEY": ""})

    assert result.returncode == 2, result
    assert result.err[0] == ("❌ workers need PLAYBOOKS_SECRET_KEY: the HMAC key that signs checkpoints, the same on "
                             "every worker and client")
    assert result.err[1].startswith('   generate one: export PLAYBOOKS_SECRET_KEY=$(python -c "import secrets;')
    assert "Traceback" not in result.stderr
    assert cluster.client.hlen("pbw:workers") == 0


def test_celery_worker_without_a_secret_key_refuses_to_start(cluster: Cluster) -> None:
    celery = Path(sys.executable).parent / "celery"
    command = [str(celery)] if celery.exists() else [sys.executable, "-m", "celery"]
    env = {**cluster.env, "PLAYBOOKS_SECRET_KEY": ""}
    process = subprocess.Popen([*command, "-A", "playbooks_worker.cluster", "worker", "-c", "1", "--loglevel",
                                "WARNING", "--without-mingle", "--without-gossip"],
                               cwd=cluster.root, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"`celery worker` started without PLAYBOOKS_SECRET_KEY:\n{output}")

    assert process.returncode != 0, output
    assert "workers need PLAYBOOKS_SECRET_KEY" in output
    assert cluster.client.hlen("pbw:workers") == 0  # it never got as far as a heartbeat
