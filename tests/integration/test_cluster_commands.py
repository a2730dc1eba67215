"""`runs`, `status`, `checkpoints` and `inspect` (--json) against the cluster, by env var and by --broker."""

from __future__ import annotations

import socket

from cluster_support import Cluster, slow_output, slow_program

STEPS = 4


def test_the_look_commands_against_a_cluster_run(cluster: Cluster) -> None:
    worker = cluster.worker(concurrency=2)
    gate = cluster.root / "gate"
    cluster.write("slow.pb", slow_program(cluster.effects_log, steps=STEPS, delay_s=0.05, gate=gate))
    follower = cluster.follow("run", "slow.pb")
    run_id = follower.run_id()
    cluster.wait_started(2)
    by_flag = {"PLAYBOOKS_BROKER_URL": ""}  # the same commands with --broker and no env var

    running = cluster.status(run_id)
    listed = cluster.pb("runs", "--json", "--broker", cluster.redis_url, env=by_flag)

    assert running["state"] == "running"
    assert running["worker"] == f"{socket.gethostname()}:{worker.pid}"
    assert (running["attempts"], running["failovers"], running["handoffs"]) == (1, 0, 0)
    assert listed.returncode == 0, listed
    assert [(r["run_id"], r["state"]) for r in listed.json()] == [(run_id, "running")]
    gate.touch()  # Work(2) waited for it: the run was surely running while we looked
    assert follower.wait(20).returncode == 0

    status = cluster.pb("status", run_id, "--json", "--broker", cluster.redis_url, env=by_flag)
    assert status.returncode == 0, status
    done = status.json()
    agent_id = f"slow_1_{run_id}"
    assert done["run_id"] == run_id
    assert (done["state"], done["attempts"], done["failovers"], done["worker"]) == ("succeeded", 1, 0, None)
    assert done["program"] == str(cluster.root / "slow.pb")
    assert done["result"] is None and done["error"] is None
    assert [(a["number"], a["pid"], a["outcome"]) for a in done["attempt_log"]] == [(1, worker.pid, "succeeded")]
    # Each step is a Work record and a Say record, plus the first Say and the total.
    assert done["agents"] == [{"agent_id": agent_id, "klass": "Slow", "checkpoints": 2 * STEPS + 2,
                               "last_checkpoint": f"{agent_id}_ckpt_{2 * STEPS + 2}"}]

    listed = cluster.pb("checkpoints", run_id, "--json")
    assert listed.returncode == 0, listed
    rows = listed.json()
    assert [r["checkpoint_id"] for r in rows] == [f"{agent_id}_ckpt_{n}" for n in range(1, 2 * STEPS + 3)]
    assert [(r["kind"], r["name"]) for r in rows[:3]] == [("say", "Say"), ("tool", "Work"), ("say", "Say")]
    assert {r["attempt"] for r in rows} == {1}
    assert all(r["replayable"] and not r["failed"] for r in rows)
    by_agent = cluster.pb("checkpoints", agent_id, "--json", "--broker", cluster.redis_url, env=by_flag)
    assert by_agent.returncode == 0, by_agent
    assert by_agent.json() == rows

    work = rows[1]["checkpoint_id"]
    inspected = cluster.pb("inspect", work, "--json")
    assert inspected.returncode == 0, inspected
    view = inspected.json()
    assert view["checkpoint_id"] == work
    assert view["result"] == "10"
    assert view["error"] is None
    meta = view["metadata"]
    assert (meta["kind"], meta["name"], meta["execution_id"], meta["run_id"], meta["attempt"]) == (
        "tool", "Work", agent_id, run_id, 1)
    assert meta["statement"] == "value = await Work(n)"
    source = (cluster.root / "slow.pb").read_text().splitlines()
    assert (meta["file"], source[meta["line"] - 1].strip()) == (str(cluster.root / "slow.pb"), meta["statement"])

    missing = cluster.pb("inspect", f"{agent_id}_ckpt_999", "--json")
    assert missing.returncode == 2, missing
    assert f"checkpoint {agent_id}_ckpt_999 not found in Redis" in missing.stderr
    assert "Traceback" not in missing.stderr
    unknown = cluster.pb("status", "nosuchrun", "--json")
    assert unknown.returncode == 2, unknown
    assert "no run 'nosuchrun' in Redis" in unknown.stderr
    assert cluster.said(run_id) == slow_output(STEPS)
