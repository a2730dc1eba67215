"""RunProgress: what a follower's status line shows of a cluster run, read from its journals."""

from __future__ import annotations

from cluster_helpers import KEY, record

from playbooks_worker.checkpoints.redis import RedisCheckpointProvider
from playbooks_worker.cluster import progress as progress_module
from playbooks_worker.cluster.keys import Keys
from playbooks_worker.cluster.progress import RunProgress


def test_it_counts_checkpoints_of_every_agent_and_finds_the_latest_step(client, keys: Keys,
                                                                         provider: RedisCheckpointProvider) -> None:
    progress = RunProgress(client, keys, "r1", KEY)
    assert progress.poll() == (0, None)

    provider.write_sync(record("r1", 1, kind="step"))
    provider.write_sync(record("r1", 2))
    assert progress.poll() == (2, "Step1")

    other = record("r1", 1, kind="step", agent="helper_2_r1")
    other["metadata"].update(seq=5, name="Helping")
    provider.write_sync(other)
    provider.write_sync(record("r1", 3, kind="step"))  # seq 3: older than the helper's step (seq 5)
    assert progress.poll() == (4, "Helping")
    assert progress.seen == {"agent_1_r1": 3, "helper_2_r1": 1}


def test_without_the_key_it_counts_but_names_no_step(client, keys: Keys,
                                                     provider: RedisCheckpointProvider) -> None:
    provider.write_sync(record("r1", 1, kind="step"))
    assert RunProgress(client, keys, "r1", None).poll() == (1, None)


def test_a_burst_is_read_only_up_to_max_decode_records(client, keys: Keys, provider: RedisCheckpointProvider,
                                                       monkeypatch) -> None:
    monkeypatch.setattr(progress_module, "MAX_DECODE", 2)
    provider.write_sync(record("r1", 1, kind="step"))
    for counter in range(2, 6):
        provider.write_sync(record("r1", counter))
    decoded: list[str] = []
    real = progress_module.decode_record
    monkeypatch.setattr(progress_module, "decode_record",
                        lambda signer, ckpt_id, blob: decoded.append(ckpt_id) or real(signer, ckpt_id, blob))

    assert RunProgress(client, keys, "r1", KEY).poll() == (5, None)  # the step was too far back to be seen
    assert decoded == ["agent_1_r1_ckpt_4", "agent_1_r1_ckpt_5"]
