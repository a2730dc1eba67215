"""Executor.execute in-process on fakeredis: what a worker does with one task message, without Celery.

Crash by state (STYLE, Tests): a takeover is the two writes another worker's ACQUIRE makes (the lease
goes, the epoch moves on), done from inside a tool so it lands mid-run at a known step.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import cluster_helpers
import pytest
from cluster_helpers import STEPS_PROGRAM, Enqueued

from playbooks_worker.checkpoints.redis import RedisCheckpointProvider
from playbooks_worker.cluster import app as app_module
from playbooks_worker.cluster import executor as executor_module
from playbooks_worker.cluster import heartbeat
from playbooks_worker.cluster.executor import Executor
from playbooks_worker.cluster.keys import Keys
from playbooks_worker.cluster.store import RedisRunStore
from playbooks_worker.config import load_settings
from playbooks_worker.program import load_program
from playbooks_worker.runs import RunRecord

SAID = ["step 1: 10", "step 2: 20", "step 3: 30", "step 4: 40", "all done"]


@pytest.fixture(autouse=True)
def fresh_effects() -> Iterator[None]:
    cluster_helpers.EFFECTS.clear()
    cluster_helpers.HOOKS.clear()
    Executor.draining.clear()
    yield
    cluster_helpers.HOOKS.clear()


@pytest.fixture
def make_executor(client, enqueued: Enqueued, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Executor]:
    """`make_executor("host-b:2")`: the executor of worker process host-b:2, on the fake server."""
    monkeypatch.setenv("PLAYBOOKS_SECRET_KEY", "unit-test-secret-0123456789")
    monkeypatch.setattr(executor_module, "redis_client", lambda settings: client)
    monkeypatch.setattr(app_module, "enqueue_run", lambda run_id, settings: enqueued.append(run_id))
    settings = load_settings(environ={"PLAYBOOKS_BROKER_URL": "redis://fake:6379/0"})

    def make(owner: str) -> Executor:
        executor = Executor(settings)
        executor.store.owner = owner
        return executor

    return make


@pytest.fixture
def submitted(make_executor: Callable[[str], Executor], tmp_path: Path) -> str:
    path = tmp_path / "steps.pb"
    path.write_text(STEPS_PROGRAM, encoding="utf-8")
    program = load_program(path)
    store = make_executor("client:0").store
    run = RunRecord(run_id="r1", program=str(path), program_digest=program.digest, created_at=1.0,
                    program_display="steps.pb", sources=dict(program.sources))
    assert store.create(run)
    return run.run_id


def ran() -> list[tuple[int, str]]:
    """(step, worker) of every Work call that ran live, in order."""
    return list(cluster_helpers.EFFECTS)


def execute_as(executor: Executor, run_id: str) -> str:
    cluster_helpers.WORKER[0] = executor.store.owner
    return executor.execute(run_id)


def stream(client, keys: Keys, run_id: str) -> list[dict]:
    return [json.loads(fields[b"event"]) for _id, fields in client.xrange(keys.events(run_id))]


def said(client, keys: Keys, run_id: str) -> list[str]:
    return [e["message"] for e in stream(client, keys, run_id) if e["type"] == "say"]


def ends(client, keys: Keys, run_id: str) -> list[str]:
    return [e["state"] for e in stream(client, keys, run_id) if e["type"] == "end"]


def test_a_run_executes_once_and_publishes_its_output_in_order(make_executor, submitted: str, client,
                                                               keys: Keys) -> None:
    worker = make_executor("host-a:1")

    assert execute_as(worker, submitted) == "succeeded"

    assert worker.store.get(submitted).state == "succeeded"
    assert said(client, keys, submitted) == SAID
    assert ends(client, keys, submitted) == ["succeeded"]
    assert ran() == [(n, "host-a:1") for n in range(1, 5)]
    assert not client.exists(keys.lease(submitted))


def test_a_duplicate_message_for_a_finished_run_is_dropped(make_executor, submitted: str, client,
                                                           keys: Keys) -> None:
    worker = make_executor("host-a:1")
    execute_as(worker, submitted)

    assert execute_as(make_executor("host-b:2"), submitted) == "dropped: run is succeeded"

    assert ran() == [(n, "host-a:1") for n in range(1, 5)]
    assert ends(client, keys, submitted) == ["succeeded"]
    assert worker.store.get(submitted).state == "succeeded"


def test_a_duplicate_message_for_a_run_held_by_a_live_lease_is_dropped(make_executor, submitted: str,
                                                                       client, keys: Keys) -> None:
    holder: RedisRunStore = make_executor("host-a:1").store
    holder.acquire(submitted)  # host-a:1 (alive, on another host) executes it

    assert execute_as(make_executor("host-b:2"), submitted) == (
        f"dropped: run {submitted} is held by host-a:1 1 (a live lease)")

    assert ran() == []
    assert client.get(keys.lease(submitted)) == b"host-a:1 1"
    assert stream(client, keys, submitted) == []


def test_a_fenced_worker_stops_and_its_successor_finishes_exactly_once(make_executor, submitted: str, client,
                                                                       keys: Keys) -> None:
    zombie, successor = make_executor("host-a:1"), make_executor("host-b:2")

    def taken_over() -> None:  # while Work(3) runs on host-a, its lease expires and another worker acquires
        client.delete(keys.lease(submitted))
        client.incr(keys.epoch(submitted))

    cluster_helpers.HOOKS[3] = taken_over

    assert execute_as(zombie, submitted) == "fenced"
    assert said(client, keys, submitted) == SAID[:2]  # Work(3)'s record and its Say were refused
    assert ends(client, keys, submitted) == []
    assert execute_as(successor, submitted) == "succeeded"

    assert said(client, keys, submitted) == SAID
    assert ends(client, keys, submitted) == ["succeeded"]
    assert ran() == [(1, "host-a:1"), (2, "host-a:1"), (3, "host-a:1"),
                                       (3, "host-b:2"), (4, "host-b:2")]  # only the in-flight tool twice
    run = successor.store.get(submitted)
    assert run.state == "succeeded"
    assert [(a.number, a.outcome) for a in run.attempts] == [(1, None), (2, "succeeded")]
    journal = successor.provider.read_journal_sync(run.agents[0]["agent_id"])
    works = [r["metadata"]["attempt"] for r in journal if r["metadata"]["name"] == "Work"]
    assert works == [1, 1, 2, 2]


def test_a_handoff_queues_the_run_for_another_worker(make_executor, submitted: str, client, keys: Keys,
                                                     enqueued: Enqueued) -> None:
    leaving, staying = make_executor("host-a:1"), make_executor("host-b:2")

    def sigterm() -> None:  # what the worker_shutting_down signal does, while Work(2) runs
        client.set(keys.draining(leaving.store.owner), "1")
        heartbeat.heartbeat(leaving)

    cluster_helpers.HOOKS[2] = sigterm
    try:
        assert execute_as(leaving, submitted) == "handed_off"
    finally:
        Executor.draining.clear()

    run = leaving.store.get(submitted)
    assert (run.state, run.handoffs, enqueued) == ("queued", 1, [submitted])
    assert not client.exists(keys.lease(submitted))
    assert said(client, keys, submitted) == SAID[:1]  # stopped at the await after Work(2): its Say
    assert execute_as(staying, submitted) == "succeeded"

    assert said(client, keys, submitted) == SAID
    assert ran() == [(1, "host-a:1"), (2, "host-a:1"), (3, "host-b:2"), (4, "host-b:2")]
    assert ends(client, keys, submitted) == ["succeeded"]


def test_checkpoints_name_the_statement_though_the_worker_runs_elsewhere(make_executor, submitted: str,
                                                                         tmp_path: Path) -> None:
    """The worker has no shared disk: its cwd is not the client's, yet call sites map to the program's lines."""
    worker = make_executor("host-a:1")
    assert Path.cwd() != tmp_path  # the program was submitted from tmp_path; this process runs elsewhere

    assert execute_as(worker, submitted) == "succeeded"

    run = worker.store.get(submitted)
    journal = worker.provider.read_journal_sync(run.agents[0]["agent_id"])
    statements = [(r["metadata"]["name"], r["metadata"]["statement"]) for r in journal[:3]]
    assert statements == [("Work", "value = await Work(n)"), ("Say", 'await Say("user", f"step {n}: {value}")'),
                          ("Work", "value = await Work(n)")]
    assert all(r["metadata"]["line"] > 0 for r in journal)


def test_a_worker_fenced_after_its_last_checkpoint_does_not_announce_the_end(
        make_executor, submitted: str, client, keys: Keys, monkeypatch: pytest.MonkeyPatch) -> None:
    """Taken over between its last checkpoint and its final run-record write: the successor ends the run."""
    zombie, successor = make_executor("host-a:1"), make_executor("host-b:2")
    write = RedisCheckpointProvider.write_sync

    def write_then_lose_the_run(self, record, *, event=None, consume_input=False):  # type: ignore[no-untyped-def]
        write(self, record, event=event, consume_input=consume_input)
        if event is not None and event.get("message") == "all done" and self.epoch == 1:
            client.delete(keys.lease(submitted))  # host-a pauses here; another worker takes the run over
            client.incr(keys.epoch(submitted))

    monkeypatch.setattr(RedisCheckpointProvider, "write_sync", write_then_lose_the_run)

    assert execute_as(zombie, submitted) == "fenced"
    assert ends(client, keys, submitted) == []  # its final save was refused: it announces nothing
    assert execute_as(successor, submitted) == "succeeded"

    assert ends(client, keys, submitted) == ["succeeded"]
    assert said(client, keys, submitted) == SAID
    assert ran() == [(n, "host-a:1") for n in range(1, 5)]  # the successor only replayed


def test_redis_failing_mid_run_stops_the_run_without_failing_it(make_executor, submitted: str, client,
                                                                keys: Keys) -> None:
    import redis

    worker = make_executor("host-a:1")
    scripts = worker.provider.scripts
    append = scripts.append_checkpoint

    def cut_off() -> None:  # while Work(3) runs, the connection to Redis breaks: its checkpoint write fails
        def fail(**_: object) -> None:
            scripts.append_checkpoint = append
            raise redis.ConnectionError("Connection reset by peer")

        scripts.append_checkpoint = fail

    cluster_helpers.HOOKS[3] = cut_off

    with pytest.raises(redis.ConnectionError):  # to Celery: the task failed, not the program
        execute_as(worker, submitted)

    run = worker.store.get(submitted)
    assert (run.state, run.error) == ("running", None)  # not "failed": the reaper hands it on
    assert ends(client, keys, submitted) == []
    assert not client.exists(keys.lease(submitted))
    heartbeat.reap_one(worker, submitted, expected_lease=None)
    assert execute_as(make_executor("host-b:2"), submitted) == "succeeded"
    assert said(client, keys, submitted) == SAID
    assert [n for n, _ in ran()] == [1, 2, 3, 3, 4]  # the call in flight when the store failed ran again
