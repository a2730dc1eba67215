"""The signing key (environment, key file, its permissions) and the signed envelope."""

from __future__ import annotations

import hashlib
import hmac
import stat
import threading
from pathlib import Path

import pytest
from ckpt_helpers import KEY, make_record

from playbooks_worker.checkpoints import Signer, load_secret_key, signing
from playbooks_worker.checkpoints.signing import MAGIC, decode_record, default_key_file, encode_record
from playbooks_worker.errors import CheckpointTooLarge, SecretKeyError

MAKE_KEY = 'python -c "import secrets; print(secrets.token_hex(32))"'


# -- the key ------------------------------------------------------------------------------------------------


def test_the_environment_key_wins(tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    environ = {
        "PLAYBOOKS_SECRET_KEY": "correct horse battery staple",
        "PLAYBOOKS_SECRET_KEY_FILE": str(key_file),
    }

    assert load_secret_key(environ=environ) == b"correct horse battery staple"
    assert not key_file.exists()  # no file is made when the environment has the key


def test_a_short_environment_key_says_how_to_make_a_good_one() -> None:
    with pytest.raises(SecretKeyError) as caught:
        load_secret_key(environ={"PLAYBOOKS_SECRET_KEY": "hunter2"})
    assert str(caught.value) == (
        "PLAYBOOKS_SECRET_KEY is too short (7 characters; at least 16): make a good one with: " + MAKE_KEY
    )


def test_the_key_file_is_created_once_private_and_reused(tmp_path: Path) -> None:
    environ = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}

    first = load_secret_key(environ=environ)
    key_file = tmp_path / "xdg" / "playbooks-worker" / "secret.key"

    assert len(first) == 64 and bytes.fromhex(first.decode())  # 32 random bytes, hex
    assert key_file.read_bytes().strip() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert load_secret_key(environ=environ) == first


def test_key_file_locations(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    assert default_key_file({"HOME": home}) == tmp_path / "home" / ".config" / "playbooks-worker" / "secret.key"
    assert default_key_file({"HOME": home, "XDG_CONFIG_HOME": "relative/ignored"}) == default_key_file({"HOME": home})
    assert default_key_file({"HOME": home, "XDG_CONFIG_HOME": "/etc/xdg"}) == Path(
        "/etc/xdg/playbooks-worker/secret.key"
    )
    chosen = str(tmp_path / "keys" / "pbw.key")
    assert default_key_file({"HOME": home, "XDG_CONFIG_HOME": "/x", "PLAYBOOKS_SECRET_KEY_FILE": chosen}) == Path(
        chosen
    )

    key = load_secret_key(environ={"PLAYBOOKS_SECRET_KEY_FILE": chosen})
    assert Path(chosen).read_bytes().strip() == key
    explicit = tmp_path / "explicit.key"
    assert load_secret_key(environ={"PLAYBOOKS_SECRET_KEY_FILE": chosen}, key_file=explicit) != key
    assert explicit.is_file()


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    load_secret_key(environ={}, key_file=key_file)
    key_file.chmod(0o644)

    with pytest.raises(SecretKeyError) as caught:
        load_secret_key(environ={}, key_file=key_file)
    assert str(caught.value) == (
        f"secret key file {key_file} has mode 0644: other users can read it and forge checkpoints. "
        f"Run: chmod 600 {key_file}"
    )


def test_a_missing_key_file_without_create_says_to_set_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SecretKeyError, match=r"PLAYBOOKS_SECRET_KEY is not set and .* does not exist") as caught:
        load_secret_key(environ={}, key_file=tmp_path / "none.key", create=False)
    assert "Set PLAYBOOKS_SECRET_KEY to the same secret on every worker" in str(caught.value)
    assert MAKE_KEY in str(caught.value)
    assert not (tmp_path / "none.key").exists()


def test_an_empty_or_short_key_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signing, "KEY_WRITE_WAIT_S", 0.0)
    key_file = tmp_path / "secret.key"
    key_file.write_bytes(b"")
    key_file.chmod(0o600)
    with pytest.raises(SecretKeyError, match="is empty: delete it"):
        load_secret_key(environ={}, key_file=key_file)
    key_file.write_bytes(b"short\n")
    with pytest.raises(SecretKeyError, match=f"secret key file {key_file} is too short"):
        load_secret_key(environ={}, key_file=key_file)


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    key_file = tmp_path / "cfg" / "secret.key"
    barrier = threading.Barrier(8)
    keys: list[bytes] = []

    def start() -> None:
        barrier.wait()
        keys.append(load_secret_key(environ={}, key_file=key_file))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(keys) == 8 and len(set(keys)) == 1


# -- the envelope -------------------------------------------------------------------------------------------


def test_the_envelope_format() -> None:
    blob = Signer(KEY).seal("a_ckpt_1", b"payload")

    expected_mac = hmac.new(KEY, MAGIC + b"a_ckpt_1\0payload", hashlib.sha256).digest()
    assert blob == b"PBWCKPT1" + expected_mac + b"payload"
    assert Signer(KEY).unseal("a_ckpt_1", blob) == b"payload"


@pytest.mark.parametrize("length", [1, 16, 63, 64, 65, 200])  # around SHA-256's 64-byte block
def test_the_mac_is_standard_hmac_sha256_for_any_key_length(length: int) -> None:
    key = bytes(range(256))[:length]
    blob = Signer(key).seal("agent_ckpt_12", b"x" * 1000)
    assert blob[8:40] == hmac.new(key, MAGIC + b"agent_ckpt_12\0" + b"x" * 1000, hashlib.sha256).digest()


def test_the_signer_never_shows_its_key() -> None:
    signer = Signer(b"k" * 32)
    assert "k" * 10 not in repr(signer)
    with pytest.raises(ValueError):
        Signer(b"")


def test_encode_and_decode_a_record() -> None:
    signer = Signer(KEY)
    record = make_record("a", 3)

    blob = encode_record(signer, record, max_bytes=None)

    assert decode_record(signer, "a_ckpt_3", blob) == record
    with pytest.raises(CheckpointTooLarge, match=r"checkpoint a_ckpt_3 is \d+ bytes, over the limit of 100 bytes"):
        encode_record(signer, record, max_bytes=100)
