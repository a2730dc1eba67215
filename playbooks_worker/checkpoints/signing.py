"""The HMAC key, and the signed envelope every checkpoint is stored in (DESIGN §4).

A checkpoint is a cloudpickle payload, and unpickling runs code: anyone who can write a checkpoint file or key
could otherwise run code in the next `--resume`. So every payload is sealed with HMAC-SHA256 and nothing is
unpickled until its signature verifies. The MAC covers the checkpoint id as well as the payload, so a valid
record copied to another id (another agent, another counter) is refused too.

    blob = MAGIC (8 bytes) + HMAC-SHA256(key, MAGIC + ckpt_id UTF-8 + b"\\0" + payload) (32 bytes) + payload

There is no length field: a payload cut short fails the MAC like any other change.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cloudpickle

from playbooks_worker.errors import CheckpointCorrupt, CheckpointTooLarge, SecretKeyError

MAGIC = b"PBWCKPT1"
MAC_SIZE = 32
HEADER_SIZE = len(MAGIC) + MAC_SIZE
MIN_KEY_CHARS = 16
BYTES_PER_MB = 1024 * 1024
KEY_WRITE_WAIT_S = 0.5  # how long a reader waits for a concurrent creator to write the new key

_IPAD = bytes(x ^ 0x36 for x in range(256))  # RFC 2104 inner and outer pads, as byte translation tables
_OPAD = bytes(x ^ 0x5C for x in range(256))
_MAKE_KEY = 'python -c "import secrets; print(secrets.token_hex(32))"'
_TAMPERED = "tampered, or signed with another key, or copied from another checkpoint id"


# -- the key ------------------------------------------------------------------------------------------------


def default_key_file(environ: Mapping[str, str] | None = None) -> Path:
    """`$PLAYBOOKS_SECRET_KEY_FILE`, else `$XDG_CONFIG_HOME/playbooks-worker/secret.key` (XDG: ~/.config)."""
    env = os.environ if environ is None else environ
    if env.get("PLAYBOOKS_SECRET_KEY_FILE"):
        return Path(env["PLAYBOOKS_SECRET_KEY_FILE"]).expanduser()
    xdg = env.get("XDG_CONFIG_HOME", "")
    # The XDG spec says to ignore a relative value; HOME from `environ` keeps tests off the real home.
    config_home = Path(xdg) if os.path.isabs(xdg) else Path(env.get("HOME") or Path.home()) / ".config"
    return config_home / "playbooks-worker" / "secret.key"


def load_secret_key(
    *, environ: Mapping[str, str] | None = None, key_file: Path | None = None, create: bool = True
) -> bytes:
    """The signing key: `PLAYBOOKS_SECRET_KEY`, else the private key file (created on first use)."""
    env = os.environ if environ is None else environ
    from_env = env.get("PLAYBOOKS_SECRET_KEY", "")
    if from_env:
        return _check_key(from_env, "PLAYBOOKS_SECRET_KEY")
    path = key_file if key_file is not None else default_key_file(env)
    if not path.exists():
        if not create:
            raise SecretKeyError(
                f"no checkpoint signing key: PLAYBOOKS_SECRET_KEY is not set and {path} does not exist. "
                f"Set PLAYBOOKS_SECRET_KEY to the same secret on every worker (make one with: {_MAKE_KEY})"
            )
        _create_key_file(path)
    return _read_key_file(path)


def _check_key(text: str, source: str) -> bytes:
    if len(text) < MIN_KEY_CHARS:
        raise SecretKeyError(
            f"{source} is too short ({len(text)} characters; at least {MIN_KEY_CHARS}): "
            f"make a good one with: {_MAKE_KEY}"
        )
    return text.encode("utf-8")


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        # O_EXCL: of two processes starting at once, exactly one creates the key; the other reads it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return
    try:
        os.write(fd, os.urandom(32).hex().encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_key_file(path: Path) -> bytes:
    # A concurrent creator may not have written its 65 bytes yet: wait briefly for them.
    deadline = time.monotonic() + KEY_WRITE_WAIT_S
    while True:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise SecretKeyError(f"cannot read the secret key file {path}: {e.strerror}") from None
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
        if mode & 0o077:
            raise SecretKeyError(
                f"secret key file {path} has mode {mode:04o}: other users can read it and forge checkpoints. "
                f"Run: chmod 600 {path}"
            )
        text = data.decode("utf-8", "replace").strip()
        if text or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if not text:
        raise SecretKeyError(f"secret key file {path} is empty: delete it and a new key is made on next use")
    return _check_key(text, f"secret key file {path}")


# -- the envelope -------------------------------------------------------------------------------------------


class Signer:
    """Seals and verifies checkpoint payloads with one key."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("the signing key is empty")
        # HMAC (RFC 2104) from two pre-keyed SHA-256 states, copied per message: the construction of the
        # stdlib's pure-Python hmac fallback, at about half the cost of hmac.digest, which re-derives the key
        # pads on every call (measured 1.2 vs 2.2 us a record: 10 ms off loading a 10,000-record journal).
        # test_signing checks it equals hmac.new() for keys shorter than, equal to and longer than a block.
        block = hashlib.sha256().block_size
        padded = (hashlib.sha256(key).digest() if len(key) > block else bytes(key)).ljust(block, b"\0")
        self._inner = hashlib.sha256(padded.translate(_IPAD))
        self._inner.update(MAGIC)
        self._outer = hashlib.sha256(padded.translate(_OPAD))

    def __repr__(self) -> str:
        return "Signer(<key hidden>)"

    def _mac(self, ckpt_id: str, payload: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(ckpt_id.encode("utf-8") + b"\0")
        inner.update(payload)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def seal(self, ckpt_id: str, payload: bytes) -> bytes:
        return b"".join((MAGIC, self._mac(ckpt_id, payload), payload))

    def unseal(self, ckpt_id: str, blob: bytes) -> bytes:
        """The payload, once its signature verifies; CheckpointCorrupt saying why otherwise."""
        if len(blob) < HEADER_SIZE and (blob.startswith(MAGIC) or MAGIC.startswith(blob)):
            raise CheckpointCorrupt(
                f"checkpoint {ckpt_id} is truncated ({len(blob)} bytes, shorter than the "
                f"{HEADER_SIZE}-byte signed header); delete it or resume from an earlier checkpoint"
            )
        if not blob.startswith(MAGIC):
            raise CheckpointCorrupt(
                f"checkpoint {ckpt_id} is not a playbooks-worker checkpoint (unsigned: no {MAGIC.decode()} "
                "header); it was not written by playbooks-worker and will not be loaded"
            )
        payload = blob[HEADER_SIZE:]
        if not hmac.compare_digest(blob[len(MAGIC) : HEADER_SIZE], self._mac(ckpt_id, payload)):
            raise CheckpointCorrupt(
                f"checkpoint {ckpt_id}: signature mismatch ({_TAMPERED}). If PLAYBOOKS_SECRET_KEY or the key "
                "file changed, restore the old key; otherwise delete it or resume from an earlier checkpoint"
            )
        return payload


def encode_record(signer: Signer, record: dict[str, Any], *, max_bytes: int | None) -> bytes:
    """Pickle, check the size limit, seal. Raises CheckpointTooLarge naming the statement.

    A value that cannot be pickled (a lock, a socket…) raises pickle's own error (PicklingError, TypeError,
    AttributeError) unchanged: the runtime catches exactly those, to record an unpicklable exception in a
    picklable form or to name the source line of an unpicklable result.
    """
    ckpt_id = str(record["checkpoint_id"])
    payload = cloudpickle.dumps(record, protocol=5)
    if max_bytes is not None and len(payload) > max_bytes:
        raise CheckpointTooLarge(
            f"checkpoint {ckpt_id} is {_size(len(payload))}, over the limit of {_size(max_bytes)}, "
            f"for `{_statement(record)}`. Return a smaller value (save big "
            "data elsewhere and return a reference to it), or raise durability.max_checkpoint_size_mb "
            "in playbooks.toml"
        )
    return signer.seal(ckpt_id, payload)


def decode_record(signer: Signer, ckpt_id: str, blob: bytes) -> dict[str, Any]:
    """Verify, then unpickle. Every failure is CheckpointCorrupt naming the checkpoint."""
    payload = signer.unseal(ckpt_id, blob)
    try:
        record = cloudpickle.loads(payload)
    except Exception as e:
        raise CheckpointCorrupt(
            f"checkpoint {ckpt_id} is signed but cannot be loaded ({type(e).__name__}: {e}); "
            "was it written by code that has since changed, or that cannot be imported here?"
        ) from e
    if not isinstance(record, dict):
        raise CheckpointCorrupt(f"checkpoint {ckpt_id} holds a {type(record).__name__}, not a record")
    return record


def max_bytes_for(max_size_mb: float | None) -> int | None:
    return None if max_size_mb is None else round(max_size_mb * BYTES_PER_MB)


def _size(n_bytes: int) -> str:
    """`10 MB`, `0.0477 MB`, `512 bytes`: readable next to a limit set in MB."""
    mb = n_bytes / BYTES_PER_MB
    if mb >= 100:
        return f"{mb:.0f} MB"
    return f"{mb:.3g} MB" if n_bytes >= 1024 else f"{n_bytes} bytes"


def _statement(record: dict[str, Any]) -> str:
    metadata = record.get("metadata")
    statement = metadata.get("statement") if isinstance(metadata, dict) else None
    return str(statement) if statement else "<unknown statement>"
