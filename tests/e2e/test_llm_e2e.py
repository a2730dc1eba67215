"""LLM playbooks through the real `playbooks` command: a crash inside the second model answer, then `--resume`,
against the fake OpenAI-compatible server (tests/llm_fake_server.py, in this process) and the scripted provider;
no completed model call is asked twice and no line is said twice. Also: a program with LLM playbooks and no
[llm] is refused, and `inspect` shows an LLM checkpoint's answer, tokens and latency."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from e2e_support import Workspace, only_agent, say_lines

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared llm_fake_server module

from llm_fake_server import FakeLLMServer

API_KEY = "sk-e2e-test-key-0123456789abcdef"

TOOLS = """
@playbook
async def Double(n: int) -> int:
    \"\"\"Twice n.\"\"\"
    effect("Double", n)
    crash_point("Double")
    return n * 2
"""

BODY = """
## Main
### Triggers
- At the beginning
### Steps
- Greet the user
- Double 21 and tell the user
- Say goodbye
"""


def fence(code: str) -> str:
    return "```python\n" + code.strip("\n") + "\n```"


ANSWERS = [
    fence('await Step("Main:01:QUE")\nawait Say("user", "Hello!")'),
    # The crash happens inside this answer, after its first line was said: the answer has no record yet.
    fence('await Step("Main:02:QUE")\nawait Say("user", "Doubling 21...")\nvalue = await Double(21)\n'
          'await Say("user", f"Twice 21 is {value}")'),
    fence('await self.Step("Main:03:QUE")\nawait self.Say("user", "Goodbye!")\nawait Return(value)'),
]
OUTPUT = ["Hello!", "Doubling 21...", "Twice 21 is 42", "Goodbye!"]


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(ANSWERS) as server:
        yield server


def write_program(ws: Workspace) -> None:
    ws.program("double.pb", "# Doubler\nA friendly agent that doubles numbers.", BODY, tools=TOOLS)


def openai_config(ws: Workspace, server: FakeLLMServer) -> dict[str, str]:
    ws.config(f'[durability]\nenabled = true\n[llm]\nprovider = "openai"\nmodel = "fake-gpt"\n'
              f'base_url = "{server.base_url}"\n')
    return {"OPENAI_API_KEY": API_KEY}


def crash_then_resume(ws: Workspace, env: dict[str, str]) -> None:
    """Run, crash inside the second answer, resume: each line said once, the in-flight tool run again."""
    write_program(ws)
    ws.crash_at("Double")
    first = ws.pb("run", "double.pb", env=env)
    assert first.returncode == 137, first
    assert first.out == OUTPUT[:2]
    resumed = ws.pb("run", "double.pb", "--resume", env=env)
    assert resumed.returncode == 0, resumed
    agent = only_agent(ws)
    assert f"✅ Resumed execution for agent {agent}" in resumed.err
    assert resumed.err[-1] == "Execution complete ✅"
    assert resumed.out == OUTPUT[2:]
    lines = say_lines(first, resumed)
    assert lines == OUTPUT and len(set(lines)) == len(lines)  # nothing said twice
    assert ws.effect_counts() == {"Double 21": 2}  # in flight at the crash: run again, at least once


def test_crash_in_the_second_answer_then_resume_with_the_fake_server(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    env = openai_config(ws, fake_llm)
    crash_then_resume(ws, env)
    # Each conversation was asked once, except the second: its answer was cut off by the crash, so it had no
    # record, and the resume asked it again (the fake server answers the same question the same way).
    asked = fake_llm.conversations()
    assert len(asked) == 4
    assert asked[1] == asked[2]
    assert sorted(Counter(asked).values()) == [1, 1, 2]
    assert all(h["authorization"] == f"Bearer {API_KEY}" for h in fake_llm.headers)


def test_crash_in_the_second_answer_then_resume_with_the_scripted_provider(ws: Workspace) -> None:
    ws.write("responses.yaml", yaml.safe_dump({"Doubler": ANSWERS}))
    ws.config('[durability]\nenabled = true\n[llm]\nprovider = "scripted"\nscript = "responses.yaml"\n')
    crash_then_resume(ws, {})
    kinds = [json.loads(ws.pb("inspect", p.stem, "--json").stdout)["metadata"]["kind"]
             for p in ws.checkpoint_files()]
    assert kinds.count("llm") == 3  # one record per answer: the cut-off one was recorded once, on resume


def test_inspect_shows_the_answer_tokens_and_latency(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    env = openai_config(ws, fake_llm)
    write_program(ws)
    done = ws.pb("run", "double.pb", env=env)
    assert done.returncode == 0, done
    assert done.out == OUTPUT
    agent = only_agent(ws)
    rows = json.loads(ws.pb("checkpoints", agent, "--json").stdout)
    llm = [row for row in rows if row["kind"] == "llm"]
    assert [row["statement"] for row in llm] == [f"Main: LLM call #{i}" for i in (1, 2, 3)]
    shown = ws.pb("inspect", llm[0]["checkpoint_id"])
    assert shown.returncode == 0, shown
    model = next(line for line in shown.out if line.startswith("Model "))
    prompt_tokens = fake_llm.requests and len(json.dumps(fake_llm.requests[0]["messages"])) // 4
    assert model.startswith(f"Model        fake-gpt, {prompt_tokens} prompt + ")
    assert " completion tokens, " in model and model.endswith(" ms")
    response = shown.out[shown.out.index("Response") + 1:][:4]
    assert response == ["  | ```python", '  | await Step("Main:01:QUE")', '  | await Say("user", "Hello!")', "  | ```"]
    as_json = json.loads(ws.pb("inspect", llm[0]["checkpoint_id"], "--json").stdout)
    assert as_json["metadata"]["kind"] == "llm" and as_json["metadata"]["name"] == "Main"
    assert API_KEY not in shown.stdout + json.dumps(as_json)


def test_llm_playbooks_without_llm_config_are_refused(ws: Workspace) -> None:
    write_program(ws)
    refused = ws.pb("run", "double.pb")
    assert refused.returncode == 2, refused
    assert "Traceback" not in refused.stderr
    assert refused.err[0] == "Loading playbooks from: ['double.pb']"
    assert refused.err[1].startswith("❌ double.pb:") and refused.err[1].endswith(
        "Doubler.Main is an LLM playbook (natural-language steps), and no LLM is configured ([llm] provider is empty)")
    assert refused.err[2].startswith('   add to playbooks.toml:  [llm] provider = "openai" and model = ')
    assert 'provider = "scripted" with script = "responses.yaml"' in refused.err[2]
    assert refused.out == [] and not ws.checkpoint_files()


def test_a_refused_key_fails_the_run_without_showing_it(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    env = openai_config(ws, fake_llm)
    write_program(ws)
    fake_llm.fail(401, body={"error": {"message": f"Incorrect API key provided: {API_KEY}"}})
    failed = ws.pb("run", "double.pb", env=env)
    assert failed.returncode == 1, failed
    assert "the server refused the API key (HTTP 401)" in failed.stderr
    assert "check OPENAI_API_KEY" in failed.stderr
    assert API_KEY not in failed.stdout + failed.stderr and "Traceback" not in failed.stderr
    assert len(fake_llm.requests) == 1
    # Fixed (here: the server lets the key in again), the run resumes.
    resumed = ws.pb("run", "double.pb", "--resume", env=env)
    assert resumed.returncode == 0, resumed
    assert resumed.out == OUTPUT


def test_a_stream_cut_mid_answer_fails_the_run_and_resume_asks_again(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    env = openai_config(ws, fake_llm)
    write_program(ws)
    fake_llm.chunk_chars = 1  # the first answer is cut right after its Step and Say lines arrived and ran
    fake_llm.drop_after(ANSWERS[0].index("Hello!") + len('Hello!")\n'))
    failed = ws.pb("run", "double.pb", env=env)
    assert failed.returncode == 1, failed
    assert "the answer broke off after" in failed.stderr and "--resume" in failed.stderr
    assert failed.out == ["Hello!"]
    resumed = ws.pb("run", "double.pb", "--resume", env=env)
    assert resumed.returncode == 0, resumed
    assert say_lines(failed, resumed) == OUTPUT  # "Hello!" replayed, not said again
    assert fake_llm.conversations()[0] == fake_llm.conversations()[1]
