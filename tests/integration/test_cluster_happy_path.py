"""The happy path through the CLI: submit, execute on a worker, follow, exit 0 (DESIGN §5, §6)."""

from __future__ import annotations

from cluster_support import Cluster, assert_completed_once, slow_output, slow_program

STEPS = 3


def test_run_submits_follows_and_prints_exactly_the_programs_output(cluster: Cluster) -> None:
    cluster.worker(concurrency=2)
    cluster.write("steps.pb", slow_program(cluster.effects_log, steps=STEPS, delay_s=0.05))

    result = cluster.pb("run", "steps.pb")

    assert result.returncode == 0, result
    assert result.out == slow_output(STEPS)
    run_id = result.stderr.split("📤 Submitted run ")[1].split()[0]
    assert result.err[0] == "Loading playbooks from: ['steps.pb']"
    assert result.err[1] == (f"📤 Submitted run {run_id} to queue 'playbooks' on {cluster.redis_url}")
    assert result.err[-1] == "Execution complete ✅"
    assert "Found checkpoint" not in result.stderr  # nothing to resume: one attempt
    assert "Traceback" not in result.stderr
    assert_completed_once(cluster, run_id, steps=STEPS)
    status = cluster.status(run_id)
    assert (status["state"], status["attempts"], status["failovers"], status["handoffs"]) == ("succeeded", 1, 0, 0)
