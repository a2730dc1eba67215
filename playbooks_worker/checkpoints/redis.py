"""Checkpoints in Redis, keyed by agent id (DESIGN §4): the cluster's store, usable locally too.

One agent's journal is a hash `P:{run}:journal:{agent}` of counter -> signed record. A checkpoint is one
round trip: a Lua script that checks the run's fencing epoch, adds the record if its counter is new, indexes
the agent, and — in the same atomic step — publishes the output the record stands for and consumes the input
it recorded. A worker that lost its run to another (a newer epoch) gets `Fenced` and writes nothing.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from playbooks_worker import metrics
from playbooks_worker.checkpoints.provider import (
    CheckpointProvider,
    checkpoint_id,
    parse_record_id,
    split_checkpoint_id,
)
from playbooks_worker.checkpoints.signing import Signer, decode_record, encode_record, load_secret_key, max_bytes_for
from playbooks_worker.cluster.failures import store_call
from playbooks_worker.cluster.keys import Keys
from playbooks_worker.cluster.scripts import Scripts
from playbooks_worker.errors import CheckpointError, CheckpointNotFound, Fenced
from playbooks_worker.runtime.engine import run_id_of_agent

if TYPE_CHECKING:
    import redis

    from playbooks_worker.config import Settings


class RedisCheckpointProvider(CheckpointProvider):
    delivers_events = True

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "pbw",
        epoch: int | None = None,
        unit: str | None = None,
        max_size_mb: float | None = 10,
        secret_key: bytes | None = None,
        scripts: Scripts | None = None,
    ) -> None:
        self.client = client
        self.keys = Keys(prefix)
        self.epoch = epoch
        self.unit = unit  # whose epoch fences the writes: the run, or one agent of a spread run
        self.max_size_mb = max_size_mb
        self._max_bytes = max_bytes_for(max_size_mb)
        self._signer = Signer(secret_key if secret_key is not None else load_secret_key())
        self.scripts = scripts or Scripts(client)

    @classmethod
    def from_settings(cls, settings: Settings, *, epoch: int | None = None) -> RedisCheckpointProvider:
        from playbooks_worker.cluster.connection import redis_client

        return cls(redis_client(settings), prefix=settings.cluster.key_prefix, epoch=epoch,
                   max_size_mb=settings.durability.max_checkpoint_size_mb)

    def fenced(self, epoch: int, unit: str | None = None) -> RedisCheckpointProvider:
        """The same store, writing as the owner of `epoch` of the run (or of `unit`, an agent of a spread run)."""
        other = object.__new__(RedisCheckpointProvider)
        other.__dict__.update(self.__dict__)
        other.epoch = epoch
        other.unit = unit
        return other

    def __repr__(self) -> str:
        return f"RedisCheckpointProvider(prefix={self.keys.prefix!r}, epoch={self.epoch!r})"

    # -- the five methods ------------------------------------------------------------------------------

    @store_call
    def write_sync(self, record: dict[str, Any], *, event: dict[str, Any] | None = None,
                   consume_input: bool = False, earlier: dict[str, Any] | None = None) -> None:
        """`earlier`: a record of the same agent written in the same atomic write (a deferred receive)."""
        ckpt_id = record["checkpoint_id"]
        agent_id, counter = parse_record_id(ckpt_id)
        run_id = run_id_of_agent(agent_id)
        blob = encode_record(self._signer, record, max_bytes=self._max_bytes)
        k = self.keys
        result = self.scripts.append_checkpoint(
            keys=[k.epoch(self.unit or run_id), k.journal(run_id, agent_id), k.agents(run_id), k.events(run_id),
                  k.inbox(self.unit or run_id)],
            args=["" if self.epoch is None else str(self.epoch), counter, blob, agent_id,
                  json.dumps(event, default=str) if event is not None else "", "1" if consume_input else "0",
                  *self._earlier(earlier)],
        )
        self._check(result, ckpt_id, run_id)

    def _earlier(self, earlier: dict[str, Any] | None) -> list[Any]:
        if earlier is None:
            return []
        return [parse_record_id(earlier["checkpoint_id"])[1],
                encode_record(self._signer, earlier, max_bytes=self._max_bytes)]

    @store_call
    def write_with_effects(self, record: dict[str, Any], effects: list[dict[str, Any]], *,
                           event: dict[str, Any] | None = None, consume_input: bool = False,
                           earlier: dict[str, Any] | None = None) -> list[str]:
        """`write_sync`, plus what the recorded call did to other agents of a spread run, in the same atomic
        write: messages it sent (`{"send": message, "snoop": event}`), agents it created (`{"create": unit}`).
        Returns the agents to enqueue: recipients that were waiting, and the agents created."""
        ckpt_id = record["checkpoint_id"]
        agent_id, counter = parse_record_id(ckpt_id)
        run_id = run_id_of_agent(agent_id)
        blob = encode_record(self._signer, record, max_bytes=self._max_bytes)
        k = self.keys
        keys = [k.epoch(self.unit or run_id), k.journal(run_id, agent_id), k.agents(run_id), k.events(run_id),
                k.inbox(self.unit or run_id)]
        args = ["" if self.epoch is None else str(self.epoch), counter, blob, agent_id,
                json.dumps(event, default=str) if event is not None else "", "1" if consume_input else "0",
                *(self._earlier(earlier) or ["", ""])]
        for effect in effects:
            if "send" in effect:
                message = effect["send"]
                keys += [k.mailbox(message["to"]), k.run(message["to"])]
                args += ["send", json.dumps(message), json.dumps(effect["snoop"], default=str), message["to"]]
            else:
                unit = effect["create"]
                keys += [k.run(unit["agent_id"]), k.units(run_id)]
                args += ["create", json.dumps(unit, default=str), "", unit["agent_id"]]
        reply = self.scripts.append_with_effects(keys=keys, args=args)
        self._check(int(reply[0]), ckpt_id, run_id)
        return [a.decode() if isinstance(a, bytes) else str(a) for a in reply[1:]]

    def _check(self, result: int, ckpt_id: str, run_id: str) -> None:
        if result == -1:
            metrics.fenced_writes.inc()
            raise Fenced(run_id, self.epoch or 0)
        if result == -2:
            raise CheckpointError(f"checkpoint {ckpt_id} already exists: checkpoints are never overwritten; "
                                  "is another process running the same agent?")

    def read_sync(self, ckpt_id: str) -> dict[str, Any]:
        try:
            agent_id, counter = split_checkpoint_id(ckpt_id)
        except ValueError as exc:
            raise CheckpointNotFound(str(exc)) from None
        blob = self.client.hget(self.keys.journal(run_id_of_agent(agent_id), agent_id), str(counter))
        if blob is None or ckpt_id != checkpoint_id(agent_id, counter):
            raise CheckpointNotFound(f"checkpoint {ckpt_id} not found in Redis (prefix {self.keys.prefix!r})",
                                     hint="'playbooks checkpoints RUN_ID' lists them")
        return decode_record(self._signer, ckpt_id, blob)

    def ids_sync(self, agent_id: str) -> list[str]:
        counters = self.client.hkeys(self.keys.journal(run_id_of_agent(agent_id), agent_id))
        return [checkpoint_id(agent_id, n) for n in sorted(int(c) for c in counters)]

    def delete_agent_sync(self, agent_id: str) -> int:
        run_id = run_id_of_agent(agent_id)
        key = self.keys.journal(run_id, agent_id)
        pipe = self.client.pipeline()
        pipe.hlen(key)
        pipe.delete(key)
        pipe.srem(self.keys.agents(run_id), agent_id)
        return int(pipe.execute()[0])

    def agents_sync(self) -> list[str]:
        marker = ":journal:"
        found = {key.decode().split(marker, 1)[1] if isinstance(key, bytes) else key.split(marker, 1)[1]
                 for key in self.client.scan_iter(match=self.keys.journal_pattern(), count=1000)}
        return sorted(found)

    # -- faster paths ----------------------------------------------------------------------------------

    def run_agents_sync(self, run_id: str) -> list[str]:
        return sorted(m.decode() if isinstance(m, bytes) else m
                      for m in self.client.smembers(self.keys.agents(run_id)))

    def read_journal_sync(self, agent_id: str) -> list[dict[str, Any]]:
        blobs = self.client.hgetall(self.keys.journal(run_id_of_agent(agent_id), agent_id))
        ordered = sorted((int(counter), blob) for counter, blob in blobs.items())
        return [decode_record(self._signer, checkpoint_id(agent_id, n), blob) for n, blob in ordered]
