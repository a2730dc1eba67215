"""How far a cluster run has got, as its follower sees it: checkpoints saved and the latest `Step(...)`.

For the live status line of `playbooks run` / `attach` on a terminal. It reads only what the worker writes
anyway — the run's journals — so following a run costs the worker nothing: one pipelined HLEN per agent per
poll, and the metadata of at most `MAX_DECODE` new records per poll (verified, then unpickled, as `inspect`
does; without the signing key the step is simply not shown).
"""

from __future__ import annotations

from typing import Any

from playbooks_worker.checkpoints.provider import checkpoint_id
from playbooks_worker.checkpoints.signing import Signer, decode_record
from playbooks_worker.cluster.keys import Keys

MAX_DECODE = 50  # records looked at per poll: a burst of checkpoints may hide a step, never slow the follower


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RunProgress:
    def __init__(self, client: Any, keys: Keys, run_id: str, secret_key: bytes | None) -> None:
        self.client = client
        self.keys = keys
        self.run_id = run_id
        self.signer = Signer(secret_key) if secret_key else None
        self.seen: dict[str, int] = {}  # agent id -> the highest counter looked at
        self.step: str | None = None
        self._step_seq = -1

    def poll(self) -> tuple[int, str | None]:
        """(checkpoints saved so far, the name of the latest Step or None)."""
        agents = sorted(_text(a) for a in self.client.smembers(self.keys.agents(self.run_id)))
        if not agents:
            return 0, self.step
        pipe = self.client.pipeline(transaction=False)
        for agent in agents:
            pipe.hlen(self.keys.journal(self.run_id, agent))
        counts = [int(n) for n in pipe.execute()]
        if self.signer is not None:
            for agent, n in zip(agents, counts, strict=True):
                self._look_at(agent, n)
        return sum(counts), self.step

    def _look_at(self, agent: str, count: int) -> None:
        seen = self.seen.get(agent, 0)
        if count <= seen:
            return
        counters = list(range(max(seen + 1, count - MAX_DECODE + 1), count + 1))
        self.seen[agent] = count
        blobs = self.client.hmget(self.keys.journal(self.run_id, agent), [str(c) for c in counters])
        for counter, blob in zip(counters, blobs, strict=True):
            if blob is None:
                continue
            try:
                meta = decode_record(self.signer, checkpoint_id(agent, counter), blob)["metadata"]
            except Exception:  # a record it cannot read is only a step it cannot show
                continue
            if meta.get("kind") == "step" and meta.get("seq", 0) > self._step_seq:
                self._step_seq, self.step = meta.get("seq", 0), str(meta.get("name"))
