"""Random command lines: every `playbooks` command exits 0, 1, 2 or 3 with a message, never a traceback.

DESIGN §6 exit codes: 0 completed, 1 the program failed, 2 bad usage, configuration or program text, 3 waiting
for input that cannot come. Hypothesis builds argv for run/runs/status/checkpoints/inspect/clear/send/cancel/
attach out of real ids (a finished run, its agent and checkpoints), near-misses (`x_ckpt_0`, `../`, `{`), unicode,
empty and very long strings, known and unknown options, and runs them in-process (CliRunner, exceptions not
caught) in a workspace with durability on. A few command lines go through the real executable with bytes that
are not UTF-8, as a shell would pass them. Without a broker the cluster commands must say so and exit 2; with
one (fakeredis standing in for Redis) hostile ids reach Redis keys and Lua scripts and must still end cleanly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fakeredis
import pytest
from click.testing import CliRunner, Result
from fuzz_support import fuzz
from hypothesis import given
from hypothesis import strategies as st

from playbooks_cli.main import cli

SECRET_KEY = "fuzz-cli-secret-key-0123456789abcdef"
EXIT_CODES = {0, 1, 2, 3}
COMMANDS = ["run", "runs", "status", "checkpoints", "inspect", "clear", "send", "cancel", "attach"]
CLUSTER_COMMANDS = ["send", "cancel", "attach"]

PROGRAMS = {
    "hello.pb": "# Hello:AI\nSays hello.\n\n## Main\n\n```python\nawait Say(\"user\", \"hello\")\n```\n",
    "ask.pb": "# Asker:AI\nAsks.\n\n## Main\n\n```python\nname = await Yield(\"user\")\n"
              "await Say(\"user\", f\"hi {name}\")\n```\n",
    "fail.pb": "# Failer:AI\nFails.\n\n## Main\n\n```python\nraise ValueError(\"boom\")\n```\n",
    "args.pb": "# Args:AI\nTakes arguments.\n\n## Main($name: str, $n: int = 1)\n\n```python\n"
               "await Say(\"user\", f\"{name} {n}\")\n```\n",
    "llm.pb": "# Talker:AI\nNeeds a model.\n\n## Main\n\n### Steps\n- Greet the user\n",
    "broken.pb": "# Broken:AI\n\n## Main\n\n```python\nawait Nope()\n```\n",
}




@dataclass
class Workspace:
    root: Path
    run_id: str
    agent_id: str
    checkpoint_id: str


def invoke(args: list[str], env: dict[str, str | None] | None = None) -> Result:
    environment: dict[str, str | None] = {"PLAYBOOKS_BROKER_URL": None, "PLAYBOOKS_CONFIG": None}
    return CliRunner().invoke(cli, args, env={**environment, **(env or {})}, input="", catch_exceptions=False)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A directory with durability on, the programs above and one finished run; the cwd while the module runs."""
    root = tmp_path_factory.mktemp("fuzz-cli")
    (root / "playbooks.toml").write_text("[durability]\nenabled = true\n", encoding="utf-8")
    (root / "bad.toml").write_text("[durability]\nkeep_last_n = 0\n", encoding="utf-8")
    for name, text in PROGRAMS.items():
        (root / name).write_text(text, encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("PLAYBOOKS_")]:
            patch.delenv(name)
        patch.setenv("PLAYBOOKS_SECRET_KEY", SECRET_KEY)
        patch.setenv("HOME", str(root / "home"))
        patch.setenv("XDG_CONFIG_HOME", str(root / "home" / ".config"))
        patch.chdir(root)
        first = invoke(["run", "hello.pb"])
        assert first.exit_code == 0, first.output
        [run] = json.loads(invoke(["runs", "--json"]).stdout)
        agent_id = run["agents"][0]["agent_id"]
        yield Workspace(root, run["run_id"], agent_id, f"{agent_id}_ckpt_1")


# -- argv -------------------------------------------------------------------------------------------------

UNICODE = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=20)
LONG = st.sampled_from(["a" * 5000, "é" * 300, "x_ckpt_" + "9" * 400, "-" * 300, "/" * 300, "🙂" * 100])


def ids(ws: Workspace) -> st.SearchStrategy[str]:
    real = [ws.run_id, ws.agent_id, ws.checkpoint_id, f"{ws.agent_id}_ckpt_99", f"{ws.run_id}x", ws.run_id[:-1]]
    odd = ["", " ", "-", "--", "-x", ".", "..", "../", "../../etc/passwd", "/", "/tmp", "*", "?", "{", "}", "{x}",
           "x_ckpt_0", "x_ckpt_-1", "x_ckpt_1.5", "_ckpt_1", "a_ckpt_", "ckpt", "\\", "a\nb", "%s", "$(id)",
           "hello.pb", "ask.pb", "fail.pb", "args.pb", "llm.pb", "broken.pb", "missing.pb", "playbooks.toml",
           ".checkpoints", ".checkpoints/.runs", "\u202e", "\ufeff"]
    return st.sampled_from(real) | st.sampled_from(odd) | UNICODE | LONG


# Per command: (positional arguments it takes, its flags, its options that take a value). Mostly the command's
# own, so a command line gets past click to the command itself; sometimes another command's, or nonsense.
SHAPES: dict[str, tuple[int, list[str], list[str]]] = {
    "run": (1, ["--resume", "--detach", "-v", "--snoop", "--json", "--name", "--n=x"],
            ["--resume", "--from-checkpoint", "--input", "--config", "--broker", "--name", "--n"]),
    "runs": (0, ["--all", "--json"], ["--config", "--broker"]),
    "status": (1, ["--json"], ["--config", "--broker"]),
    "checkpoints": (1, ["--json"], ["--config", "--broker"]),
    "inspect": (1, ["--json"], ["--config", "--broker"]),
    "clear": (2, ["--all", "-y", "--yes"], ["--config"]),
    "send": (2, ["--json"], ["--config", "--broker"]),
    "cancel": (1, ["--json"], ["--config", "--broker"]),
    "attach": (1, ["--json"], ["--input", "--config", "--broker"]),
}
STRAY_OPTIONS = st.sampled_from(["--help", "-h", "--bogus", "--", "-", "--json=1", "--all", "--resume=",
                                 "--concurrency", "-y", "--input"])
BROKERS = st.sampled_from(["redis://127.0.0.1:1/0", "nonsense", "", "rediss://127.0.0.1:1/0",
                           "redis://:pw@127.0.0.1:1/0", "redis://127.0.0.1:99999/0", "unix:///nonexistent"])
CONFIGS = st.sampled_from(["playbooks.toml", "bad.toml", "missing.toml", ".", "/dev/null", "hello.pb"])


@st.composite
def argv(draw: st.DrawFn, ws: Workspace, commands: list[str]) -> list[str]:
    command = draw(st.sampled_from(commands))
    positional, flags, valued = SHAPES[command]
    words = ids(ws)
    args = [command]
    if command == "run":
        args.append(draw(st.sampled_from(list(PROGRAMS)) | words))
        positional = 0
    elif command == "clear":
        positional = draw(st.integers(0, 2))
    if draw(st.integers(0, 4)) == 0:
        positional = draw(st.integers(0, 3))
    args += [draw(words) for _ in range(positional)]
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["flag", "valued", "valued", "stray"]))
        if kind == "flag":
            args.append(draw(st.sampled_from(flags)))
        elif kind == "stray":
            args.append(draw(STRAY_OPTIONS))
        else:
            option = draw(st.sampled_from(valued))
            value = draw(BROKERS if option == "--broker" else CONFIGS if option == "--config" else words)
            args += [option, value] if draw(st.booleans()) else [f"{option}={value}"]
    return args


def check(result: Result, args: list[str]) -> None:
    assert result.exit_code in EXIT_CODES, (args, result.exit_code, result.output)
    assert "Traceback" not in result.output, (args, result.output)
    if result.exit_code == 2:
        assert result.stderr.strip(), (args, "exit 2 without a message")


# -- local mode -------------------------------------------------------------------------------------------


@fuzz(250)
@given(data=st.data())
def test_random_command_lines_end_with_a_known_exit_code(workspace: Workspace, data: st.DataObject) -> None:
    args = data.draw(argv(workspace, COMMANDS), label="argv")
    check(invoke(args), args)


@pytest.mark.parametrize("command", CLUSTER_COMMANDS)
def test_cluster_commands_without_a_broker_exit_2_saying_so(workspace: Workspace, command: str) -> None:
    args = [command, workspace.run_id, *(["hello"] if command == "send" else [])]
    result = invoke(args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "Error: no broker configured: set [cluster] broker_url, PLAYBOOKS_BROKER_URL or --broker" in result.stderr


@pytest.mark.parametrize("command", CLUSTER_COMMANDS)
def test_cluster_commands_with_an_unreachable_broker_exit_2(workspace: Workspace, command: str) -> None:
    args = [command, workspace.run_id, *(["hello"] if command == "send" else []), "--broker",
            "redis://:pw-not-shown@127.0.0.1:1/0"]
    result = invoke(args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("❌ cannot reach Redis at redis://:***@127.0.0.1:1/0: "), result.stderr
    assert "pw-not-shown" not in result.output


def test_ids_that_cannot_be_file_names_are_not_found(workspace: Workspace) -> None:
    """Found by this fuzz: a 300-character id or program name was an OSError (File name too long); a path as
    a run id was read as a path."""
    long_id = "a" * 300
    status = invoke(["status", long_id])
    assert status.exit_code == 2
    assert status.stderr.startswith(f"❌ no run '{long_id}' under .checkpoints"), status.stderr
    run = invoke(["run", f"{long_id}.pb"])
    assert run.exit_code == 2
    assert "❌ " + f"{long_id}.pb: cannot read program: File name too long" in run.stderr
    for path_like in ["../../etc/passwd", ".runs", "a/b"]:
        result = invoke(["status", path_like])
        assert result.exit_code == 2
        assert result.stderr.startswith(f"❌ no run {path_like!r} under .checkpoints"), result.stderr
    listed = invoke(["checkpoints", long_id])
    assert listed.exit_code == 2
    assert listed.stderr.startswith(f"❌ no run or agent '{long_id}' has checkpoints under .checkpoints")
    inspected = invoke(["inspect", f"{long_id}_ckpt_1"])
    assert inspected.exit_code == 2
    assert inspected.stderr.startswith(f"❌ '{long_id}_ckpt_1': agent id '{long_id}' cannot be a directory name")


def test_a_malformed_checkpoint_id_is_bad_usage(workspace: Workspace) -> None:
    result = invoke(["inspect", workspace.run_id])
    assert result.exit_code == 2  # was 1, "the program failed"
    assert result.stderr == (f"❌ '{workspace.run_id}' is not a checkpoint id (expected AGENT_ID_ckpt_N)\n"
                             "   'playbooks checkpoints RUN_ID' lists checkpoint ids\n")


BYTES_ARGS = st.lists(st.binary(min_size=0, max_size=12).filter(lambda b: b"\0" not in b), min_size=1, max_size=2)


@fuzz(6)
@given(command=st.sampled_from(["status", "checkpoints", "inspect", "clear", "cancel", "run"]), raw=BYTES_ARGS)
def test_the_real_executable_with_arguments_that_are_not_utf8(workspace: Workspace, command: str,
                                                              raw: list[bytes]) -> None:
    script = Path(sys.executable).parent / "playbooks"
    executable = [os.fsencode(script)] if script.exists() else [os.fsencode(sys.executable), b"-m",
                                                               b"playbooks_cli.main"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYBOOKS_")}
    env["PLAYBOOKS_SECRET_KEY"] = SECRET_KEY
    done = subprocess.run([*executable, command.encode(), *raw], cwd=workspace.root, env=env, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode in EXIT_CODES, stderr
    assert "Traceback" not in stderr


# -- cluster mode, fakeredis standing in for Redis -----------------------------------------------------------


@pytest.fixture(scope="module")
def fake_cluster(workspace: Workspace) -> Iterator[fakeredis.FakeRedis]:
    """Every Redis connection of the CLI goes to one fakeredis; enqueueing records the run id instead."""
    from playbooks_worker.cluster import client as client_module
    from playbooks_worker.cluster import connection
    from playbooks_worker.cluster.keys import Keys
    from playbooks_worker.cluster.store import RedisRunStore
    from playbooks_worker.runs import RunRecord

    fake = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    store = RedisRunStore(fake, keys=Keys("pbw"), lease_seconds=3, finished_ttl_s=3600, enqueue=lambda run_id: None)
    for run_id, state in [("queued1", "queued"), ("done1", "succeeded"), ("wait1", "waiting")]:
        store.create(RunRecord(run_id=run_id, program="/p/x.pb", program_digest="d" * 16, created_at=1.0,
                               state=state, program_display="x.pb"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(connection, "check_reachable", lambda settings: fake)
        patch.setattr(client_module, "check_reachable", lambda settings: fake)
        patch.setattr(client_module, "enqueue_run", lambda run_id, settings: None)
        yield fake
    fake.close()


@fuzz(120)
@given(data=st.data())
def test_cluster_commands_with_hostile_ids(workspace: Workspace, fake_cluster: fakeredis.FakeRedis,
                                           data: st.DataObject) -> None:
    command = data.draw(st.sampled_from(["status", "checkpoints", "inspect", "runs", "send", "cancel", "attach"]))
    known = st.sampled_from(["queued1", "done1", "wait1", "{queued1}", "queued1}:run", "*", "pbw:runs"])
    run_id = data.draw(known | ids(workspace))
    if command == "attach" and run_id in ("queued1", "wait1"):
        run_id = "done1"  # attach follows a live run until it ends: only finished or unknown runs here
    args = [command] + ([] if command == "runs" else [run_id])
    if command == "send":
        args.append(data.draw(UNICODE | LONG))
    args += data.draw(st.lists(st.sampled_from(["--json", "--all", "--bogus"]), max_size=1))
    check(invoke(args, env={"PLAYBOOKS_BROKER_URL": "redis://fake:6379/0"}), args)
