"""`Yield("user")` answered from --input, then stdin; with neither, the run stops resumably with exit 3."""

from __future__ import annotations

import pytest
from e2e_support import Workspace, only_agent, say_lines

ASK = """
## Main

```python
await Say("user", "What's your name?")
name = await Yield("user")
await Record(name)
await Say("user", f"Hello, {name}! Which city are you in?")
city = await Yield("user")
await Record(city)
await Say("user", f"Greetings to {city}, {name}.")
```
"""

TOOLS = """
@playbook
def Record(answer: str) -> None:
    effect("Record", answer)
"""

FULL = ["What's your name?", "Hello, Ada! Which city are you in?", "Greetings to Paris, Ada."]


@pytest.fixture
def ask(ws: Workspace) -> Workspace:
    ws.program("ask.pb", "# Greeter:AI", ASK, tools=TOOLS)
    return ws


def test_answers_from_input_options(ask: Workspace) -> None:
    result = ask.pb("run", "ask.pb", "--input", "Ada", "--input", "Paris")
    assert result.returncode == 0, result
    assert result.out == FULL
    assert ask.effects() == ["Record Ada", "Record Paris"]


def test_answers_from_piped_stdin_after_input_options(ask: Workspace) -> None:
    result = ask.pb("run", "ask.pb", "--input", "Ada", input="Paris\nignored\n")
    assert result.returncode == 0, result
    assert result.out == FULL
    both = ask.pb("run", "ask.pb", input="Ada\nParis\n")
    assert both.returncode == 0, both
    assert both.out == FULL


@pytest.mark.parametrize("stdin", ["at EOF", "closed"])
def test_no_input_left_exits_3_then_resume_with_input_completes(ask: Workspace, stdin: str) -> None:
    waiting = ask.pb("run", "ask.pb", "--input", "Ada", stdin_closed=stdin == "closed")
    assert waiting.returncode == 3, waiting
    assert "Traceback" not in waiting.stderr
    assert waiting.out == FULL[:2]
    run_id = only_agent(ask).rsplit("_", 1)[1]
    assert waiting.err[-2:] == [
        f"⏸️  Run {run_id} is waiting for input from user and none is left.",
        "   Answer with: playbooks run ask.pb --resume --input 'your answer'",
    ]

    resumed = ask.pb("run", "ask.pb", "--resume", "--input", "Paris", stdin_closed=stdin == "closed")
    assert resumed.returncode == 0, resumed
    assert resumed.out == FULL[2:]
    assert resumed.err[-1] == "Execution complete ✅"
    assert say_lines(waiting, resumed) == FULL
    # The first answer was not asked for again, and nothing before the wait ran twice.
    assert ask.effect_counts() == {"Record Ada": 1, "Record Paris": 1}


def test_waiting_twice_then_answered(ask: Workspace) -> None:
    first = ask.pb("run", "ask.pb")
    assert first.returncode == 3, first
    second = ask.pb("run", "ask.pb", "--resume", "--input", "Ada")
    assert second.returncode == 3, second
    third = ask.pb("run", "ask.pb", "--resume", input="Paris\n")
    assert third.returncode == 0, third
    assert say_lines(first, second, third) == FULL
    assert ask.effect_counts() == {"Record Ada": 1, "Record Paris": 1}
