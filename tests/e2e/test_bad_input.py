"""Mistakes a user makes: each is a clear message naming the file, line or key, an exit code, no traceback."""

from __future__ import annotations

from e2e_support import Result, Workspace

HELLO = """
# Hello:AI

## Main

```python
await Say("user", "hi")
```
"""


def refused(result: Result, code: int = 2) -> list[str]:
    """The ❌ line(s) of a refused command, after checking its exit code and that it printed no traceback."""
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr, result
    assert result.out == [], result
    return [line for line in result.err if line.startswith("❌ ")]


def test_program_that_does_not_exist(ws: Workspace) -> None:
    errors = refused(ws.pb("run", "nope.pb"))
    assert errors == ["❌ nope.pb: cannot read program: no such file nope.pb"]


def test_syntax_error_in_a_python_block_names_the_pb_line(ws: Workspace) -> None:
    path = ws.write("syn.pb", """
        # Broken:AI

        ## Main

        ```python
        x = 1
        if x
            await Say("user", "hi")
        ```
        """)
    line = path.read_text(encoding="utf-8").splitlines().index("if x") + 1
    result = ws.pb("run", "syn.pb")
    errors = refused(result)
    assert len(errors) == 1
    assert errors[0].startswith(f"❌ syn.pb:{line}: "), errors
    assert "expected ':'" in errors[0]
    assert not (ws.root / ".checkpoints").exists()  # refused before anything ran


def test_call_to_an_undefined_playbook_suggests_the_close_name(ws: Workspace) -> None:
    path = ws.write("undef.pb", """
        # Caller:AI

        ## Main

        ```python
        await Say("user", "hi")
        await Helpr(1)
        ```

        ## Helper($n: int)

        ```python
        await Say("user", f"helper {n}")
        ```
        """)
    line = path.read_text(encoding="utf-8").splitlines().index("await Helpr(1)") + 1
    result = ws.pb("run", "undef.pb")
    assert refused(result) == [f"❌ undef.pb:{line}: 'Helpr' is not a playbook or builtin of agent Caller"]
    assert result.err[-1] == "   did you mean 'Helper'?"


def test_unknown_key_in_playbooks_toml(ws: Workspace) -> None:
    ws.write("hello.pb", HELLO)
    ws.config("[durability]\nenabled = true\nkeep_lastn = 3\n")
    errors = refused(ws.pb("run", "hello.pb"))
    assert errors == ["❌ playbooks.toml: [durability] unknown key 'keep_lastn' (did you mean 'keep_last_n'?)"]


def test_bad_value_from_the_environment_names_the_variable(ws: Workspace) -> None:
    ws.write("hello.pb", HELLO)
    errors = refused(ws.pb("run", "hello.pb", env={"PLAYBOOKS_DURABILITY__KEEP_LAST_N": "x"}))
    assert errors == ["❌ PLAYBOOKS_DURABILITY__KEEP_LAST_N='x': must be an integer"]


def test_resume_without_durability_prints_the_guides_lines(ws: Workspace) -> None:
    ws.write("hello.pb", HELLO)
    ws.config("[durability]\nenabled = false\n")
    result = ws.pb("run", "hello.pb", "--resume")
    assert result.returncode == 2, result
    assert result.err == [
        "Loading playbooks from: ['hello.pb']",
        "⚠️  Resume requested but durability not enabled",
        "   Set durability.enabled=true in playbooks.toml",
    ]
    assert result.out == []


ARGS = """
# Greeter:AI

## Main($name: str, $times: int = 1)

```python
for _ in range(times):
    await Say("user", f"hi {name}")
```
"""


def test_entry_arguments_unknown_and_missing_options(ws: Workspace) -> None:
    ws.write("args.pb", ARGS)
    unknown = ws.pb("run", "args.pb", "--nope", "1")
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr, unknown
    assert unknown.err[-1] == "Error: no such option: --nope (entry playbook Main takes --name, --times)"
    missing = ws.pb("run", "args.pb", "--times", "2")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr, missing
    assert missing.err[-1] == "Error: missing option --name (required by entry playbook Main)"
    bad = ws.pb("run", "args.pb", "--name", "Ada", "--times", "two")
    assert bad.returncode == 2, bad
    assert bad.err[-1] == "Error: --times must be an integer, not 'two'"
    assert not (ws.root / ".checkpoints").exists()
    ok = ws.pb("run", "args.pb", "--name", "Ada", "--times", "2")
    assert ok.returncode == 0, ok
    assert ok.out == ["hi Ada", "hi Ada"]


def test_resume_with_no_previous_run_warns_and_starts_normally(ws: Workspace) -> None:
    ws.write("args.pb", ARGS)
    result = ws.pb("run", "args.pb", "--resume", "--name", "Ada")
    assert result.returncode == 0, result
    assert result.err == [
        "Loading playbooks from: ['args.pb']",
        "⚠️  No checkpoints found for args.pb: starting from the beginning",
        "Execution complete ✅",
    ]
    assert result.out == ["hi Ada"]
