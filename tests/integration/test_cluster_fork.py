"""`playbooks run X.pb --from-checkpoint ID` in cluster mode: a new run from an older run's checkpoint."""

from __future__ import annotations

from cluster_support import PREFIX, Cluster, slow_output, slow_program


def test_from_checkpoint_forks_a_cluster_run_and_leaves_the_old_one_intact(cluster: Cluster) -> None:
    cluster.worker(concurrency=2)
    cluster.write("steps.pb", slow_program(cluster.effects_log, steps=4, delay_s=0))
    first = cluster.pb("run", "steps.pb")
    assert first.returncode == 0, first
    old_run = first.stderr.split("Submitted run ")[1].split()[0]
    agent = cluster.status(old_run)["agents"][0]["agent_id"]
    old_journal = cluster.client.hgetall(f"{PREFIX}:{{{old_run}}}:journal:{agent}")

    # 1 Say starting, 2 Work(1), 3 Say step 1, 4 Work(2), 5 Say step 2, 6 Work(3)…
    fork_point = f"{agent}_ckpt_5"
    forked = cluster.pb("run", "steps.pb", "--from-checkpoint", fork_point)

    assert forked.returncode == 0, forked
    assert forked.out == slow_output(4)[3:]  # what came after the fork point, said by the new run
    new_run = forked.stderr.split("🔀 Forked run ")[1].split()[0]
    assert forked.err[1] == (f"🔀 Forked run {new_run} from checkpoint {fork_point} "
                             f"(run {old_run} keeps its later checkpoints)")
    assert forked.err[-1] == "Execution complete ✅"
    status = cluster.status(new_run)
    assert (status["state"], status["parent"]) == ("succeeded", {"run_id": old_run, "checkpoint_id": fork_point})
    assert cluster.client.hgetall(f"{PREFIX}:{{{old_run}}}:journal:{agent}") == old_journal
    assert sorted(cluster.starts().elements()) == [1, 2, 3, 3, 4, 4]  # before the fork once; after it again


def test_a_checkpoint_that_does_not_exist_is_refused_clearly(cluster: Cluster) -> None:
    cluster.write("steps.pb", slow_program(cluster.effects_log, steps=1, delay_s=0))
    result = cluster.pb("run", "steps.pb", "--from-checkpoint", "slow_1_000000000000_ckpt_3")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "000000000000" in result.stderr
