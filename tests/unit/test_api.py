"""The Python API in-process: `Playbooks([path])` runs, resumes and forks; the guide's checkpoint snippet works
against the checkpoints a real run wrote."""

from __future__ import annotations

import asyncio
import os
import textwrap
from pathlib import Path

import pytest

from playbooks_worker.api import Playbooks

KEY = "api-test-secret-key-0123456789abcdef"

PROGRAM = '''
# Shop:AI

```python
import os


def effect(text):
    with open("effects.log", "a", encoding="utf-8") as log:
        log.write(text + "\\n")


@playbook
def Price(item: str) -> float:
    effect(f"Price {item}")
    if os.path.exists(f"fail-{item}"):
        raise RuntimeError(f"price service down for {item}")
    return {"apple": 1.5, "pear": 2.25, "plum": 0.75}[item]
```

## Main

```python
await Say("user", "pricing")
total = 0.0
for item in ["apple", "pear", "plum"]:
    price = await Price(item)
    total += price
    await Say("user", f"{item} {price}")
await Say("user", f"total {total}")
await Return(total)
```
'''

ASK = '''
# Greeter:AI

## Main

```python
await Say("user", "name?")
name = await Yield("user")
await Say("user", "city?")
city = await Yield("user")
await Say("user", f"{name} from {city}")
```
'''


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path as cwd with durability on, a fixed key, and no PLAYBOOKS_* or key file from outside."""
    for name in list(os.environ):
        if name.startswith("PLAYBOOKS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PLAYBOOKS_SECRET_KEY", KEY)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "playbooks.toml").write_text("[durability]\nenabled = true\n", encoding="utf-8")
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def effects(workdir: Path) -> list[str]:
    return (workdir / "effects.log").read_text(encoding="utf-8").splitlines()


def agent_dirs(workdir: Path) -> list[str]:
    return sorted(p.name for p in (workdir / ".checkpoints").iterdir() if p.is_dir() and p.name[0] != ".")


def test_run_to_completion(workdir: Path) -> None:
    program = write(workdir / "shop.pb", PROGRAM)
    pb = Playbooks([program], config_file=workdir / "playbooks.toml")
    outcome = asyncio.run(pb.run())
    assert outcome.status == "succeeded"
    assert outcome.exit_code == 0
    assert outcome.result == 4.5
    assert pb.reporter.output == ["pricing", "apple 1.5", "pear 2.25", "plum 0.75", "total 4.5"]
    assert effects(workdir) == ["Price apple", "Price pear", "Price plum"]
    assert len(agent_dirs(workdir)) == 1


def test_failure_then_resume_runs_completed_tools_once(workdir: Path) -> None:
    program = write(workdir / "shop.pb", PROGRAM)
    (workdir / "fail-pear").touch()
    first = Playbooks([program], config_file="playbooks.toml")
    failed = asyncio.run(first.run())
    assert failed.status == "failed"
    assert failed.exit_code == 1
    assert isinstance(failed.error, RuntimeError)
    assert str(failed.error) == "price service down for pear"
    assert first.reporter.output == ["pricing", "apple 1.5"]

    (workdir / "fail-pear").unlink()
    second = Playbooks([program], config_file="playbooks.toml")
    resumed = asyncio.run(second.resume())
    assert resumed.status == "succeeded"
    assert resumed.run.run_id == failed.run.run_id
    assert resumed.result == 4.5
    assert second.reporter.output == ["pear 2.25", "plum 0.75", "total 4.5"]
    assert effects(workdir) == ["Price apple", "Price pear", "Price pear", "Price plum"]


def test_waiting_for_input_then_resume_with_the_answer(workdir: Path) -> None:
    program = write(workdir / "ask.pb", ASK)
    first = Playbooks([program], config_file="playbooks.toml", inputs=["Ada"])
    waiting = asyncio.run(first.run())
    assert waiting.status == "waiting"
    assert waiting.exit_code == 3
    assert first.reporter.output == ["name?", "city?"]

    second = Playbooks([program], config_file="playbooks.toml", inputs=["Paris"])
    done = asyncio.run(second.resume())
    assert done.status == "succeeded"
    assert second.reporter.output == ["Ada from Paris"]


def test_fork_from_a_checkpoint(workdir: Path) -> None:
    program = write(workdir / "shop.pb", PROGRAM)
    original = Playbooks([program], config_file="playbooks.toml")
    first = asyncio.run(original.run())
    (agent,) = agent_dirs(workdir)
    # 1 Say pricing, 2 Price apple, 3 Say apple, 4 Price pear…
    fork = Playbooks([program], config_file="playbooks.toml")
    outcome = asyncio.run(fork.fork(f"{agent}_ckpt_3"))
    assert outcome.status == "succeeded"
    assert outcome.run.run_id != first.run.run_id
    assert outcome.run.parent == {"run_id": first.run.run_id, "checkpoint_id": f"{agent}_ckpt_3"}
    assert fork.reporter.output == ["pear 2.25", "plum 0.75", "total 4.5"]
    assert effects(workdir) == ["Price apple", "Price pear", "Price plum", "Price pear", "Price plum"]
    assert len(agent_dirs(workdir)) == 2


def test_without_durability_nothing_is_written(workdir: Path) -> None:
    program = write(workdir / "shop.pb", PROGRAM)
    (workdir / "playbooks.toml").write_text("[durability]\nenabled = false\n", encoding="utf-8")
    pb = Playbooks(program)
    outcome = asyncio.run(pb.run())
    assert outcome.status == "succeeded"
    assert pb.reporter.output[-1] == "total 4.5"
    assert not (workdir / ".checkpoints").exists()


def test_the_guides_check_checkpoint_info_snippet(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from playbooks_worker.checkpoints import CheckpointManager, FilesystemCheckpointProvider, RecoveryCoordinator

    program = write(workdir / "shop.pb", PROGRAM)
    (workdir / "fail-plum").touch()
    outcome = asyncio.run(Playbooks([program]).run())
    assert outcome.status == "failed"
    (agent_id,) = agent_dirs(workdir)

    async def snippet() -> None:
        # As in the guide, with this package's module name.
        provider = FilesystemCheckpointProvider()
        manager = CheckpointManager(execution_id=agent_id, provider=provider)

        checkpoints = await provider.list_checkpoints(agent_id)
        print(f"Found {len(checkpoints)} checkpoints")

        for ckpt_id in checkpoints:
            ckpt = await provider.load_checkpoint(ckpt_id)
            print(f"{ckpt_id}: {ckpt['metadata']['statement']}")

        coordinator = RecoveryCoordinator(manager)
        assert await coordinator.can_recover()
        info = await coordinator.get_recovery_info()
        assert info is not None
        assert info["checkpoint_id"] == f"{agent_id}_ckpt_6"
        assert info["statement"] == "price = await Price(item)"
        assert info["kind"] == "tool" and info["name"] == "Price"
        latest = await manager.get_latest_checkpoint()
        assert latest is not None and isinstance(latest["error"], RuntimeError)

    asyncio.run(snippet())
    assert capsys.readouterr().out.splitlines() == [
        "Found 6 checkpoints",
        f"{agent_id}_ckpt_1: await Say(\"user\", \"pricing\")",
        f"{agent_id}_ckpt_2: price = await Price(item)",
        f"{agent_id}_ckpt_3: await Say(\"user\", f\"{{item}} {{price}}\")",
        f"{agent_id}_ckpt_4: price = await Price(item)",
        f"{agent_id}_ckpt_5: await Say(\"user\", f\"{{item}} {{price}}\")",
        f"{agent_id}_ckpt_6: price = await Price(item)",
    ]
