"""The metrics hooks count what they should: local runs in-process, the cluster's hooks on fakeredis.

Each test enables the metrics on a fresh registry (so counts start at zero) and reads samples from it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from prometheus_client import CollectorRegistry

from playbooks_worker import metrics
from playbooks_worker.api import CollectingIO, Playbooks
from playbooks_worker.checkpoints.redis import RedisCheckpointProvider
from playbooks_worker.cluster.keys import Keys
from playbooks_worker.cluster.store import RedisRunStore
from playbooks_worker.config import load_settings
from playbooks_worker.errors import Fenced
from playbooks_worker.runs import RunRecord

KEY = b"unit-test-key-0123456789abcdef"

PROGRAM = '''\
# Counter:AI
Works through three steps.

```python
import os

@playbook
async def Work(n: int) -> int:
    if n == 3 and os.path.exists(FLAG):
        raise RuntimeError("tool failed")
    return n * 10
```

## Main

```python
total = 0
for n in range(1, 4):
    await Step(f"step {n}")
    total += await Work(n)
await Say("user", f"total {total}")
```
'''

LLM_PROGRAM = '''\
# Greeter
Greets.

## Main
### Triggers
- At the beginning
### Steps
- Greet the user
'''


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    registry = CollectorRegistry()
    metrics.enable(registry)
    yield registry
    metrics.disable()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def playbooks(tmp_path: Path, program: str, **overrides: Any) -> Playbooks:
    path = tmp_path / "prog.pb"
    path.write_text(program.replace("FLAG", repr(str(tmp_path / "fail.flag"))), encoding="utf-8")
    settings = load_settings(None, overrides={"durability.enabled": True,
                                              "durability.storage_path": str(tmp_path / ".checkpoints"),
                                              **overrides})
    return Playbooks([path], settings=settings, reporter=CollectingIO())


@pytest.fixture(autouse=True)
def signing_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PLAYBOOKS_SECRET_KEY", KEY.decode())
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)


def test_until_enabled_every_metric_is_a_shared_no_op() -> None:
    metrics.disable()
    assert metrics.checkpoints_written is metrics.NOOP
    metrics.checkpoints_written.inc()
    metrics.checkpoint_write_seconds.observe(0.1)
    metrics.runs_executed.labels("succeeded").inc()
    metrics.llm_answered({"prompt_tokens": 3})


def test_enabling_twice_on_one_registry_and_again_after_disable_keeps_the_same_metrics() -> None:
    registry = CollectorRegistry()
    metrics.enable(registry)
    counter = metrics.checkpoints_written
    metrics.enable(registry)
    metrics.disable()
    metrics.enable(registry)  # would raise "Duplicated timeseries" if it registered them again
    assert metrics.checkpoints_written is counter
    metrics.disable()


def test_a_local_run_counts_each_checkpoint_write_and_its_outcome(registry: CollectorRegistry,
                                                                  tmp_path: Path) -> None:
    pb = playbooks(tmp_path, PROGRAM)
    outcome = asyncio.run(pb.run())

    assert outcome.status == "succeeded"
    written = 7  # three Steps, three Works, one Say
    assert sample(registry, "playbooks_checkpoints_written_total") == written
    assert sample(registry, "playbooks_checkpoint_write_seconds_count") == written
    assert 0 < sample(registry, "playbooks_checkpoint_write_seconds_sum") < 5
    assert sample(registry, "playbooks_runs_executed_total", outcome="succeeded") == 1
    assert sample(registry, "playbooks_replayed_checkpoints_total") == 0
    assert sample(registry, "playbooks_replay_seconds_count") == 0


def test_a_resumed_run_counts_what_it_replayed_and_how_long_replay_took(registry: CollectorRegistry,
                                                                        tmp_path: Path) -> None:
    (tmp_path / "fail.flag").touch()
    failed = asyncio.run(playbooks(tmp_path, PROGRAM).run())
    assert failed.status == "failed"
    assert sample(registry, "playbooks_runs_executed_total", outcome="failed") == 1
    first_writes = sample(registry, "playbooks_checkpoints_written_total")
    assert first_writes == 6  # Step 1, Work 1, Step 2, Work 2, Step 3, and Work 3's error

    (tmp_path / "fail.flag").unlink()
    resumed = asyncio.run(playbooks(tmp_path, PROGRAM).resume())

    assert resumed.status == "succeeded"
    assert sample(registry, "playbooks_replayed_checkpoints_total") == 5  # all but the failed call
    assert sample(registry, "playbooks_replay_seconds_count") == 1  # one agent went live once
    assert sample(registry, "playbooks_checkpoints_written_total") == first_writes + 2  # Work 3 again, Say
    assert sample(registry, "playbooks_runs_executed_total", outcome="succeeded") == 1


def test_a_live_llm_call_is_counted_with_its_tokens_and_a_replayed_one_is_not(registry: CollectorRegistry,
                                                                               tmp_path: Path) -> None:
    script = tmp_path / "responses.yaml"
    script.write_text('Greeter:\n  - |\n    await Say("user", "Hello!")\n    await Return("ok")\n',
                      encoding="utf-8")
    llm = {"llm.provider": "scripted", "llm.script": str(script)}
    outcome = asyncio.run(playbooks(tmp_path, LLM_PROGRAM, **llm).run())
    assert outcome.status == "succeeded", outcome.error

    assert sample(registry, "playbooks_llm_calls_total") == 1
    prompt = sample(registry, "playbooks_llm_tokens_total", kind="prompt")
    completion = sample(registry, "playbooks_llm_tokens_total", kind="completion")
    assert prompt > 0 and completion == len('await Say("user", "Hello!")\nawait Return("ok")\n') // 4


# -- cluster hooks, on fakeredis ---------------------------------------------------------------------------


@pytest.fixture
def client() -> Iterator[fakeredis.FakeRedis]:
    fake = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    yield fake
    fake.close()


def new_run(run_id: str, state: str = "queued") -> RunRecord:
    return RunRecord(run_id=run_id, program="/x.pb", program_digest="d" * 16, created_at=time.time(), state=state)


def record(run_id: str, counter: int) -> dict[str, Any]:
    agent = f"agent_1_{run_id}"
    return {"checkpoint_id": f"{agent}_ckpt_{counter}",
            "metadata": {"statement": "x", "counter": counter, "timestamp": 1.0, "execution_id": agent,
                         "call_path": str(counter), "kind": "tool", "name": "T", "digest": "d", "run_id": run_id,
                         "seq": counter, "file": "x.pb", "line": 1, "attempt": 1},
            "result": counter, "error": None, "state_writes": {}}


def test_writes_refused_by_a_newer_epoch_are_counted_as_fenced(registry: CollectorRegistry, client) -> None:
    keys = Keys("pbw")
    store = RedisRunStore(client, keys=keys, lease_seconds=3, finished_ttl_s=60)
    store.create(new_run("r1"))
    ownership = store.acquire("r1")
    provider = RedisCheckpointProvider(client, prefix="pbw", secret_key=KEY).fenced(ownership.epoch)
    provider.write_sync(record("r1", 1))
    client.incr(keys.epoch("r1"))  # another worker took the run over

    with pytest.raises(Fenced):
        provider.write_sync(record("r1", 2))
    with pytest.raises(Fenced):
        store.save(store.get("r1"))

    assert sample(registry, "playbooks_fenced_writes_total") == 2


def test_the_reaper_counts_a_failover(registry: CollectorRegistry, client, monkeypatch: pytest.MonkeyPatch) -> None:
    from playbooks_worker.cluster import executor as executor_module
    from playbooks_worker.cluster import heartbeat
    from playbooks_worker.cluster.executor import Executor

    monkeypatch.setattr(executor_module, "redis_client", lambda settings: client)
    settings = load_settings(environ={"PLAYBOOKS_BROKER_URL": "redis://fake:6379/0"})
    executor = Executor(settings)
    enqueued: list[str] = []
    monkeypatch.setattr(executor, "enqueue", enqueued.append)
    dead = RedisRunStore(client, keys=executor.keys, lease_seconds=3, finished_ttl_s=60)
    dead.create(new_run("r1"))
    dead.acquire("r1")
    client.delete(executor.keys.lease("r1"))  # its worker died: the lease ran out
    client.hset(executor.keys.run("r1"), "state", "running")

    assert heartbeat.reap_one(executor, "r1", expected_lease=None)

    assert enqueued == ["r1"]
    assert sample(registry, "playbooks_failovers_total") == 1


def test_runs_by_state_are_read_from_the_store_on_each_scrape(client) -> None:
    keys = Keys("pbw")
    store = RedisRunStore(client, keys=keys, lease_seconds=3, finished_ttl_s=60)
    for run_id, state in (("a", "queued"), ("b", "queued"), ("c", "running"), ("d", "waiting")):
        store.create(new_run(run_id))
        client.hset(keys.run(run_id), "state", state)
    registry = CollectorRegistry()
    registry.register(metrics.RunStateCollector(client, keys))

    assert {s: sample(registry, "playbooks_runs", state=s) for s in ("queued", "running", "waiting")} == {
        "queued": 2, "running": 1, "waiting": 1}
    client.hset(keys.run("a"), "state", "running")
    assert sample(registry, "playbooks_runs", state="running") == 2  # read again at the next scrape


def test_handoff_is_counted_once_by_the_runner(registry: CollectorRegistry, tmp_path: Path) -> None:
    """A run stopped for a handoff (SIGTERM on a worker) counts a handoff and its outcome."""
    from playbooks_worker.errors import Handoff

    pb = playbooks(tmp_path, PROGRAM)
    runner = pb.runner
    original = runner._started

    def started(run: Any, runtime: Any) -> None:
        original(run, runtime)
        runtime.stop_reason = Handoff

    runner._started = started  # type: ignore[method-assign]
    outcome = asyncio.run(pb.run())

    assert outcome.status == "handed_off"
    assert sample(registry, "playbooks_handoffs_total") == 1
    assert sample(registry, "playbooks_runs_executed_total", outcome="handed_off") == 1
    assert sample(registry, "playbooks_runs_executed_total", outcome="succeeded") == 0
