"""What only the filesystem store promises: the guide's layout, atomic writes, settings and key file."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
from ckpt_helpers import KEY, make_record

from playbooks_worker.checkpoints import FilesystemCheckpointProvider
from playbooks_worker.checkpoints.filesystem import STALE_TMP_SECONDS
from playbooks_worker.checkpoints.signing import BYTES_PER_MB
from playbooks_worker.errors import CheckpointTooLarge, SecretKeyError


def _files(base: Path) -> list[str]:
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


def test_the_guides_layout_on_disk(tmp_path: Path) -> None:
    base = tmp_path / ".checkpoints"
    provider = FilesystemCheckpointProvider(base, secret_key=KEY)
    provider.write_sync(make_record("agent_123", 1))
    provider.write_sync(make_record("agent_123", 2))

    assert _files(base) == ["agent_123/agent_123_ckpt_1.pkl", "agent_123/agent_123_ckpt_2.pkl"]
    assert provider.path_of("agent_123_ckpt_2") == base / "agent_123" / "agent_123_ckpt_2.pkl"
    assert stat.S_IMODE((base / "agent_123" / "agent_123_ckpt_1.pkl").stat().st_mode) == 0o600


def test_no_temp_file_is_left_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = FilesystemCheckpointProvider(tmp_path, secret_key=KEY)
    for n in range(1, 6):
        provider.write_sync(make_record("a", n))
    assert sorted(os.listdir(tmp_path / "a")) == [f"a_ckpt_{n}.pkl" for n in range(1, 6)]

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        provider.write_sync(make_record("a", 6))
    assert sorted(os.listdir(tmp_path / "a")) == [f"a_ckpt_{n}.pkl" for n in range(1, 6)]


def test_a_refused_write_creates_nothing(tmp_path: Path) -> None:
    provider = FilesystemCheckpointProvider(tmp_path / "store", max_size_mb=0.001, secret_key=KEY)
    with pytest.raises(CheckpointTooLarge):
        provider.write_sync(make_record("a", 1, result=b"x" * 5000))
    assert not (tmp_path / "store").exists()


def test_temp_files_of_dead_writers_are_swept_and_never_listed(tmp_path: Path) -> None:
    FilesystemCheckpointProvider(tmp_path, secret_key=KEY).write_sync(make_record("a", 1))
    stale, fresh = tmp_path / "a" / ".a_ckpt_2.999.tmp", tmp_path / "a" / ".a_ckpt_2.998.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    old = time.time() - STALE_TMP_SECONDS - 10
    os.utime(stale, (old, old))

    provider = FilesystemCheckpointProvider(tmp_path, secret_key=KEY)  # a new process, say
    assert provider.ids_sync("a") == ["a_ckpt_1"]
    provider.write_sync(make_record("a", 2))

    assert not stale.exists()
    assert fresh.exists()  # could belong to a live writer
    assert provider.ids_sync("a") == ["a_ckpt_1", "a_ckpt_2"]
    assert provider.delete_agent_sync("a") == 2
    assert not (tmp_path / "a").exists()


def test_stray_files_are_not_checkpoints(tmp_path: Path) -> None:
    provider = FilesystemCheckpointProvider(tmp_path, secret_key=KEY)
    provider.write_sync(make_record("a", 1))
    for name in ("notes.txt", "a_ckpt_x.pkl", "b_ckpt_1.pkl", "a_ckpt_2.pkl.bak", "xa_ckpt_3.pkl"):
        (tmp_path / "a" / name).write_bytes(b"")

    assert provider.ids_sync("a") == ["a_ckpt_1"]
    assert len(provider.read_journal_sync("a")) == 1


def test_hidden_and_empty_directories_are_not_agents(tmp_path: Path) -> None:
    provider = FilesystemCheckpointProvider(tmp_path, secret_key=KEY)
    provider.write_sync(make_record("main_agent_1", 1))
    (tmp_path / ".runs").mkdir()
    (tmp_path / ".runs" / ".runs_ckpt_1.pkl").write_bytes(b"")
    (tmp_path / "empty_agent").mkdir()
    (tmp_path / "README").write_text("not an agent")

    assert provider.agents_sync() == ["main_agent_1"]
    assert provider.ids_sync(".runs") == []
    assert provider.delete_agent_sync("..") == 0
    assert provider.agents_sync() == ["main_agent_1"]


def test_a_store_that_does_not_exist_yet_is_empty(tmp_path: Path) -> None:
    provider = FilesystemCheckpointProvider(tmp_path / "nothing" / "here", secret_key=KEY)
    assert provider.agents_sync() == []
    assert provider.ids_sync("a") == []
    provider.write_sync(make_record("a", 1))  # creates the directories on first write
    assert provider.ids_sync("a") == ["a_ckpt_1"]


def test_an_agent_directory_removed_under_a_running_writer_is_made_again(tmp_path: Path) -> None:
    provider = FilesystemCheckpointProvider(tmp_path, secret_key=KEY)
    provider.write_sync(make_record("a", 1))
    for path in (tmp_path / "a").iterdir():
        path.unlink()
    (tmp_path / "a").rmdir()  # `rm -rf .checkpoints/a/` from the guide, by another process

    provider.write_sync(make_record("a", 2))
    assert provider.ids_sync("a") == ["a_ckpt_2"]


def test_settings_come_from_playbooks_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLAYBOOKS_SECRET_KEY", "k" * 32)
    (tmp_path / "playbooks.toml").write_text('[durability]\nstorage_path = "state/ckpt"\nmax_checkpoint_size_mb = 2\n')

    provider = FilesystemCheckpointProvider()
    monkeypatch.chdir("/")  # resolved when made: a later chdir does not move the store

    assert provider.base_path == tmp_path / "state" / "ckpt"
    assert provider.max_size_mb == 2
    provider.write_sync(make_record("a", 1, result=b"x" * (BYTES_PER_MB + 1)))  # under 2 MB
    with pytest.raises(CheckpointTooLarge, match="over the limit of 2 MB"):
        provider.write_sync(make_record("a", 2, result=b"x" * (2 * BYTES_PER_MB + 1)))
    assert (tmp_path / "state" / "ckpt" / "a" / "a_ckpt_1.pkl").is_file()


def test_without_settings_the_default_is_dot_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLAYBOOKS_SECRET_KEY", "k" * 32)
    assert FilesystemCheckpointProvider().base_path == tmp_path / ".checkpoints"
    assert FilesystemCheckpointProvider("rel", max_size_mb=1).base_path == tmp_path / "rel"


def test_the_key_file_is_made_private_on_first_use(tmp_path: Path, isolated_env: Path) -> None:
    provider = FilesystemCheckpointProvider(tmp_path / "store", max_size_mb=1)
    provider.write_sync(make_record("a", 1))

    key_file = isolated_env / ".config" / "playbooks-worker" / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    # The same key next time: a new provider (a resumed run) can read what the first one wrote.
    assert FilesystemCheckpointProvider(tmp_path / "store", max_size_mb=1).read_sync("a_ckpt_1")["result"]

    key_file.chmod(0o644)
    with pytest.raises(SecretKeyError, match=f"chmod 600 {key_file}"):
        FilesystemCheckpointProvider(tmp_path / "store", max_size_mb=1)


def test_a_large_journal_loads_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = FilesystemCheckpointProvider(tmp_path, secret_key=KEY)
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", lambda fd: None)  # building the fixture, not measuring writes
        for n in range(1, 10_001):
            writer.write_sync(make_record("a", n))

    reader = FilesystemCheckpointProvider(tmp_path, secret_key=KEY)
    started = time.perf_counter()
    journal = reader.read_journal_sync("a")
    elapsed = time.perf_counter() - started

    assert [r["metadata"]["counter"] for r in journal] == list(range(1, 10_001))
    # Measured ~0.13 s on the 2-core dev VM; the bound leaves room for a loaded CI machine.
    assert elapsed < 1.0, f"10,000-record journal took {elapsed:.2f} s"
