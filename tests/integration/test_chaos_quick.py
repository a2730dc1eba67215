"""bench/chaos.py --quick as a test: 8 runs and 2 ping-pong conversations (spread runs: each agent a task of its
own) on 3 workers through kills, pauses, handoffs and a Redis restart.

The benchmark starts and stops its own redis-server (AOF, fsync always) and workers; this only checks its
verdict and counts (the whole run takes ~50 s).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CHAOS = Path(__file__).resolve().parents[2] / "bench" / "chaos.py"


@pytest.mark.timeout(120)
def test_chaos_quick_keeps_every_invariant() -> None:
    done = subprocess.run([sys.executable, str(CHAOS), "--quick", "--json"], capture_output=True, text=True,
                          timeout=115)
    assert done.stdout.strip(), done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    counts, runs = result["counts"], result["counts"]["runs"]
    bad = result.get("bad_runs", []) + result.get("bad_conversations", [])
    detail = f"seed {result['seed']}: {json.dumps(result)[:4000]}\nbad: {json.dumps(bad)[:4000]}\n{done.stderr[-3000:]}"
    assert runs == 8, detail
    assert counts["completed_once"] == runs, detail
    assert counts["steps_ok"] == runs, detail  # each step once; an in-flight one at most twice, <= takeovers
    assert counts["say_exactly_once"] == runs, detail
    assert counts["journal_complete"] == runs, detail
    talks = result["conversations"]
    assert (talks["conversations"], talks["rounds"]) == (2, 20), detail
    assert talks["completed_once"] == 2, detail  # succeeded, one `end` event
    assert talks["final_counter_once"] == 2, detail  # `final 20`, said once
    assert talks["messages_exactly_once"] == 2, detail  # each in the recipient's stream once, received once, in order
    assert talks["journal_complete"] == 2, detail  # every agent's journal 1..n
    assert talks["rounds_ok"] == 2, detail  # every round ran; re-runs <= the Pinger's takeovers
    assert result["bad_conversations"] == [], detail
    injected = sum(result["faults_injected"].values())
    assert injected >= 3, detail
    assert sum(result["faults_survived"].values()) == injected, detail
    assert result["pass"] and done.returncode == 0, detail
