"""A checkpoint whose pickle would run code is never unpickled unless its signature verifies — in every store.

The store contract (test_store_contract.py) already refuses tampered, truncated, unsigned, other-key and
copied-to-another-id blobs, and proves an unsigned pickle is not loaded with an in-process flag. This adds what
an attacker who can write the store but not read the key would actually try, with a payload that leaves a
file behind when unpickled (so "not unpickled" is observable, not inferred from the error text):

- the exploit with no envelope, with a forged envelope (signed with a guessed key), with a genuine MAC taken
  from a benign record of the same id (payload swapped), cut short, or signed for one id and replayed under
  another run's id — the cross-run replay with a name that looks right;
- and a control: the same payload signed for the right id *does* create the file, so the refusals above are
  what stops it.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import cloudpickle
import pytest
from ckpt_helpers import KEY, Store, make_record

from playbooks_worker.checkpoints.signing import HEADER_SIZE, MAGIC, Signer, decode_record
from playbooks_worker.errors import CheckpointCorrupt

RUN_A, RUN_B = "aaaa1111aaaa", "bbbb2222bbbb"
AGENT_A, AGENT_B = f"looper_1_{RUN_A}", f"looper_1_{RUN_B}"


class Exploit:
    """Unpickling this calls os.mkdir(marker): code execution, made visible."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (self.marker,))


def exploit_payload(marker: Path, ckpt_id: str) -> bytes:
    record = make_record(ckpt_id.rsplit("_ckpt_", 1)[0], int(ckpt_id.rsplit("_", 1)[1]), result=Exploit(marker))
    return cloudpickle.dumps(record, protocol=5)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "PWNED"


def test_control_the_payload_runs_code_when_it_is_loaded(marker: Path) -> None:
    """Without this, 'the marker never appears' could mean the payload was broken, not that it was refused."""
    ckpt_id = f"{AGENT_B}_ckpt_3"
    decode_record(Signer(KEY), ckpt_id, Signer(KEY).seal(ckpt_id, exploit_payload(marker, ckpt_id)))
    assert marker.is_dir()


def forged(marker: Path, store: Store, how: str) -> tuple[str, bytes]:
    """(checkpoint id, blob) for one way of smuggling the exploit into run B's journal."""
    target = f"{AGENT_B}_ckpt_3"
    evil = exploit_payload(marker, target)
    if how == "no envelope":
        return target, pickle.dumps(Exploit(marker))
    if how == "magic, no signature":
        return target, MAGIC + evil
    if how == "signed with a guessed key":
        return target, Signer(b"guessed-key-0123456789abcdef").seal(target, evil)
    if how == "genuine mac, payload swapped":
        store.provider.write_sync(make_record(AGENT_B, 3))
        return target, store.get_blob(target)[:HEADER_SIZE] + evil
    if how == "one byte flipped":
        blob = bytearray(Signer(KEY).seal(target, evil))
        blob[-2] ^= 0x01  # the pickle's STOP opcode is the last byte: flip the one before, still loadable
        return target, bytes(blob)
    if how == "cut short":
        return target, Signer(KEY).seal(target, evil)[: HEADER_SIZE + len(evil) // 2]
    # Signed by the real key for run A's checkpoint, copied into run B under B's next id.
    source = f"{AGENT_A}_ckpt_3"
    return target, Signer(KEY).seal(source, exploit_payload(marker, source))


HOW = ["no envelope", "magic, no signature", "signed with a guessed key", "genuine mac, payload swapped",
       "one byte flipped", "cut short", "replayed from another run"]


@pytest.mark.parametrize("how", HOW)
def test_the_exploit_is_refused_and_never_unpickled(store: Store, marker: Path, how: str) -> None:
    store.provider.write_sync(make_record(AGENT_B, 1))
    store.provider.write_sync(make_record(AGENT_B, 2))
    target, blob = forged(marker, store, how)
    store.put_blob(target, blob)

    assert store.provider.ids_sync(AGENT_B) == [f"{AGENT_B}_ckpt_{n}" for n in (1, 2, 3)]  # it looks right
    for read in (lambda: store.provider.read_sync(target), lambda: store.provider.read_journal_sync(AGENT_B)):
        with pytest.raises(CheckpointCorrupt, match=f"checkpoint {target}"):
            read()
    assert not marker.exists(), f"{how}: the payload was unpickled"


def test_a_flipped_byte_in_the_exploit_would_still_load_without_the_mac(marker: Path) -> None:
    """The one-byte case above is a real test: the changed pickle is still loadable, so only the MAC stops it."""
    evil = bytearray(exploit_payload(marker, f"{AGENT_B}_ckpt_3"))
    evil[-2] ^= 0x01
    try:
        cloudpickle.loads(bytes(evil))
    except Exception:
        pytest.skip("this flip breaks the pickle; the refusal test still holds")
    assert marker.is_dir()
