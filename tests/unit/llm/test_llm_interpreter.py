"""LLM playbooks run in-process: the model's code executes statement by statement, calls nest in every
direction, errors are shown to the model to fix, and on resume no completed LLM call is paid for twice."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from llm_fake_server import FakeLLMServer
from llm_support import LLMHarness, fence

from playbooks_worker.errors import PlaybooksError

GREETER = """
# Greeter
A friendly agent.

```python
import os


@playbook
async def Risky(n: int) -> int:
    \"\"\"Doubles a number; crashes the process once when crash.flag exists.\"\"\"
    with open("effects.log", "a", encoding="utf-8") as log:
        log.write(f"Risky {n}\\n")
    if os.path.exists("crash.flag"):
        os.remove("crash.flag")
        raise pbw_test_crash()
    return n * 2
```

## Main
### Triggers
- At the beginning
### Steps
- Greet the user
- Double 21 with Risky and tell the user
- Say goodbye
"""


def openai(server: FakeLLMServer, **extra: object) -> dict[str, object]:
    return {"provider": "openai", "base_url": server.base_url, "model": "fake-gpt", **extra}


def user_turns(server: FakeLLMServer, index: int) -> str:
    return str(server.requests[index]["messages"][-1]["content"])


# -- running code as it streams --------------------------------------------------------------------------


def test_code_runs_statement_by_statement_and_the_return_value_reaches_the_caller(
        harness: LLMHarness, fake_llm: FakeLLMServer) -> None:
    program = harness.program(GREETER)
    fake_llm.add(fence('await Step("Main:01:QUE")\nawait Say("user", "Hello!")'),
                 fence('value = await Risky(21)\nawait self.Say("user", f"Twice 21 is {value}")'),
                 fence('await self.Step("Main:03:QUE")\nawait Say("user", "Bye")\nawait Return(value)'))
    outcome = harness.run(program, **openai(fake_llm))
    assert outcome.status == "succeeded" and outcome.result == 42
    assert outcome.output == ["Hello!", "Twice 21 is 42", "Bye"]
    assert len(fake_llm.requests) == 3
    first, second, third = (fake_llm.requests[i]["messages"] for i in range(3))
    assert [m["role"] for m in third] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert first[1]["content"].startswith("You are agent Greeter. A friendly agent.")
    assert "async def Risky(n: int) -> int:  # Doubles a number" in first[1]["content"]
    assert "What happened:\n- Step('Main:01:QUE') → delivered\n- Say('user', 'Hello!') → delivered" \
        in second[-1]["content"]
    assert "- Risky(21) → 42" in third[-1]["content"]
    assert "Local variables: value = 42" in third[-1]["content"]


def test_a_name_error_is_shown_to_the_model_and_the_next_answer_fixes_it(
        harness: LLMHarness, fake_llm: FakeLLMServer) -> None:
    program = harness.program(GREETER)
    fake_llm.add(fence('await Say("user", greeting)'),
                 fence('await Say("user", "Hello!")\nawait Return("ok")'))
    outcome = harness.run(program, **openai(fake_llm))
    assert outcome.status == "succeeded" and outcome.output == ["Hello!"]
    assert len(fake_llm.requests) == 2
    correction = user_turns(fake_llm, 1)
    assert ("ERROR: your code failed:\nline 2: await Say(\"user\", greeting)\n"
            "NameError: name 'greeting' is not defined\nFix the error and continue.") in correction
    assert fake_llm.requests[1]["messages"][-2] == {"role": "assistant", "content": fake_llm.answers[0]}


def test_a_syntax_error_is_shown_with_the_responses_line(harness: LLMHarness, fake_llm: FakeLLMServer) -> None:
    program = harness.program(GREETER)
    fake_llm.add(fence('await Say("user", "Hi")\nif True\n    pass'), fence('await Return(1)'))
    outcome = harness.run(program, **openai(fake_llm))
    assert outcome.output == ["Hi"] and outcome.result == 1
    assert "ERROR: your code failed:\nline 3: SyntaxError: expected ':'" in user_turns(fake_llm, 1)


def test_more_than_three_failures_in_a_row_fail_the_playbook(harness: LLMHarness) -> None:
    program = harness.program(GREETER)
    harness.script({"Greeter": [fence(f"x = undefined_{i}") for i in range(5)]})
    with pytest.raises(PlaybooksError) as info:
        harness.run(program, provider="scripted", script="responses.yaml")
    message = info.value.message
    assert message.startswith(f"{program}:") or ":" in message.split(" ")[0]
    assert "the model's code for Main failed 4 times in a row; last error: line 2: x = undefined_3" in message
    assert "NameError: name 'undefined_3' is not defined" in message
    assert info.value.hint == "make the playbook's steps clearer, or use a stronger model"


def test_a_success_resets_the_count_of_failures(harness: LLMHarness) -> None:
    program = harness.program(GREETER)
    bad = fence("x = nope")
    good = fence('await Say("user", "ok")')
    harness.script({"Greeter": [bad, bad, bad, good, bad, bad, bad, fence("await Return(7)")]})
    outcome = harness.run(program, provider="scripted", script="responses.yaml")
    assert outcome.status == "succeeded" and outcome.result == 7 and outcome.output == ["ok"]


def test_max_llm_calls_stops_a_runaway_agent(harness: LLMHarness) -> None:
    program = harness.program(GREETER)
    harness.script({"*": [fence('await Say("user", "again")')] * 20})
    with pytest.raises(PlaybooksError) as info:
        harness.run(program, provider="scripted", script="responses.yaml", max_llm_calls=3)
    assert info.value.message.startswith("agent greeter_1_") and "made more than 3 LLM calls" in info.value.message
    assert info.value.hint == "raise [llm] max_llm_calls if the program really needs more"


# -- nesting -----------------------------------------------------------------------------------------------

PLANNER = """
# Planner
Plans trips.

```python
@playbook
async def Weather(city: str) -> str:
    \"\"\"The weather in a city, in words the Describe playbook chooses.\"\"\"
    words = await Describe(city)
    return f"{words} in {city}"
```

## Main
### Triggers
- At the beginning
### Steps
- Ask the user for a city
- Plan the trip and tell the user

## Plan($city: str) -> str

```python
forecast = await Weather(city)
summary = await Summarize(forecast)
await Return(summary)
```

## Describe(city: str) -> str
### Steps
- Describe the weather in one word

## Summarize($text: str) -> str
### Steps
- Shout the text
"""

PLANNER_ANSWERS = [
    fence('await self.Step("Main:01:QUE")\nawait self.Say("user", "Which city?")\ncity = await self.Yield("user")'),
    fence('plan = await self.Plan(city)\nawait Say("user", plan)\nawait Return(plan)'),
    fence("await Return('sunny')"),
    fence("await self.Return(self.state.text.upper())"),
]


def test_llm_code_and_python_playbooks_nest_both_ways(harness: LLMHarness, fake_llm: FakeLLMServer) -> None:
    # Main (LLM) -> Plan (code) -> Weather (Python) -> Describe (LLM); Plan -> Summarize (LLM, $text).
    program = harness.program(PLANNER)
    fake_llm.add(*PLANNER_ANSWERS)
    outcome = harness.run(program, inputs=("Paris",), **openai(fake_llm))
    assert outcome.status == "succeeded", outcome.error
    assert outcome.output == ["Which city?", "SUNNY IN PARIS"]
    assert outcome.result == "SUNNY IN PARIS"
    assert len(fake_llm.requests) == 4  # Main, Main again after the Yield, Describe, Summarize
    describe, summarize = user_turns(fake_llm, 2), user_turns(fake_llm, 3)
    assert describe.endswith("Execute Describe(city='Paris') from step 01.")
    # $city and $text are agent state by the time Summarize is asked.
    assert "Agent state: {'city': 'Paris', 'text': 'sunny in Paris'}" in summarize
    assert summarize.endswith("Execute Summarize(text='sunny in Paris') from step 01.")


def test_no_llm_call_is_paid_twice_after_a_crash_inside_a_tool_called_by_an_llm_playbook(
        harness: LLMHarness, fake_llm: FakeLLMServer) -> None:
    program = harness.program(PLANNER.replace('    words = await Describe(city)\n',
                                              '    words = await Describe(city)\n'
                                              '    if __import__("os").path.exists("crash.flag"):\n'
                                              '        __import__("os").remove("crash.flag")\n'
                                              '        raise pbw_test_crash()\n'))
    (harness.root / "crash.flag").touch()
    fake_llm.add(*PLANNER_ANSWERS)
    first = harness.crash(program, inputs=("Paris",), **openai(fake_llm))
    assert first == ["Which city?"]
    assert len(fake_llm.requests) == 3  # Main, Main, Describe (answered, then Weather crashed)
    resumed = harness.run(program, resume=True, **openai(fake_llm))
    assert resumed.status == "succeeded" and resumed.output == ["SUNNY IN PARIS"]
    # Main's second answer was cut off by the crash (the tool ran inside it): asked again. Describe's answer
    # was recorded inside the in-flight tool, so Weather, run again, replays it.
    counts = Counter(fake_llm.conversations())
    assert sorted(counts.values()) == [1, 1, 1, 2]
    assert counts[fake_llm.conversations()[1]] == 2


# -- durability -----------------------------------------------------------------------------------------


def test_crash_in_the_second_answer_then_resume_asks_only_that_call_again(
        harness: LLMHarness, fake_llm: FakeLLMServer) -> None:
    program = harness.program(GREETER)
    fake_llm.add(fence('await Step("Main:01:QUE")\nawait Say("user", "Hello!")'),
                 fence('await Say("user", "Working on it")\nvalue = await Risky(21)\n'
                       'await Say("user", f"Twice 21 is {value}")'),
                 fence('await Say("user", "Bye")\nawait Return(value)'))
    (harness.root / "crash.flag").touch()
    first = harness.crash(program, **openai(fake_llm))
    assert first == ["Hello!", "Working on it"]
    assert len(fake_llm.requests) == 2
    resumed = harness.run(program, resume=True, **openai(fake_llm))
    assert resumed.status == "succeeded" and resumed.result == 42
    # The re-asked answer's Say replayed from the record its first, cut-off copy left: not said twice.
    assert resumed.output == ["Twice 21 is 42", "Bye"]
    conversations = fake_llm.conversations()
    assert len(conversations) == 4 and conversations[1] == conversations[2]
    assert harness.effects() == ["Risky 21", "Risky 21"]  # in flight at the crash: at least once


def test_a_reasked_call_that_answers_differently_continues_live(harness: LLMHarness) -> None:
    program = harness.program(GREETER)
    hello = fence('await Say("user", "Hello!")')
    harness.script({"Greeter": [hello, fence('await Say("user", "Working on it")\nvalue = await Risky(21)')]})
    (harness.root / "crash.flag").touch()
    assert harness.crash(program, provider="scripted", script="responses.yaml") == ["Hello!", "Working on it"]
    harness.script({"Greeter": [hello, fence('await Say("user", "Let me see")\nvalue = await Risky(4)\n'
                                             'await Return(value)')]})
    resumed = harness.run(program, resume=True, provider="scripted", script="responses.yaml")
    assert resumed.status == "succeeded" and resumed.result == 8
    assert resumed.output == ["Let me see"]
    assert harness.effects() == ["Risky 21", "Risky 4"]


def test_an_answer_given_before_the_crash_is_not_asked_for_again(harness: LLMHarness) -> None:
    program = harness.program(GREETER)
    harness.script({"Greeter": [fence('name = await Yield("user")\nvalue = await Risky(len(name))\n'
                                      'await Return(f"{name} {value}")')]})
    (harness.root / "crash.flag").touch()
    harness.crash(program, inputs=("Ada",), provider="scripted", script="responses.yaml")
    resumed = harness.run(program, resume=True, provider="scripted", script="responses.yaml")  # no input left
    assert resumed.status == "succeeded" and resumed.result == "Ada 6"


def test_waiting_for_input_records_the_answer_first(harness: LLMHarness, fake_llm: FakeLLMServer) -> None:
    program = harness.program(GREETER)
    fake_llm.add(fence('await Say("user", "Name?")\nname = await Yield("user")\nawait Say("user", "Thanks")'),
                 fence('await Return(name)'))
    waiting = harness.run(program, **openai(fake_llm))
    assert waiting.status == "waiting" and waiting.output == ["Name?"]
    assert len(fake_llm.requests) == 1
    done = harness.run(program, resume=True, inputs=("Ada",), **openai(fake_llm))
    assert done.status == "succeeded" and done.result == "Ada" and done.output == ["Thanks"]
    assert len(fake_llm.requests) == 2  # the first answer was recorded before the run stopped to wait


def test_an_llm_playbook_with_no_llm_configured_is_refused_before_it_runs(harness: LLMHarness) -> None:
    program = harness.program(GREETER)
    with pytest.raises(PlaybooksError) as info:
        harness.run(program)
    assert "Greeter.Main is an LLM playbook" in info.value.message
    assert "no LLM is configured" in info.value.message
    assert not (harness.root / ".checkpoints").exists() or not any((harness.root / ".checkpoints").glob("*/*.pkl"))


def test_the_key_never_reaches_the_journal_or_the_output(harness: LLMHarness, fake_llm: FakeLLMServer) -> None:
    from llm_support import API_KEY

    program = harness.program(GREETER)
    fake_llm.add(fence('await Return(1)'))
    harness.run(program, **openai(fake_llm))
    for path in Path(harness.root / ".checkpoints").rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path


def test_a_resume_with_another_model_replays_the_answers_already_paid_for(
        harness: LLMHarness, fake_llm: FakeLLMServer) -> None:
    program = harness.program(GREETER)
    fake_llm.add(fence('await Say("user", "Hello!")'), fence('value = await Risky(21)\nawait Return(value)'),
                 fence('value = await Risky(2)\nawait Return(value)'))
    (harness.root / "crash.flag").touch()
    assert harness.crash(program, **openai(fake_llm)) == ["Hello!"]
    resumed = harness.run(program, resume=True, **openai(fake_llm, model="a-stronger-model"))
    assert resumed.status == "succeeded" and resumed.output == []
    # The first answer is replayed, not asked again; the cut-off second one is asked of the new model.
    assert [body["model"] for body in fake_llm.requests] == ["fake-gpt", "fake-gpt", "a-stronger-model"]
    assert resumed.result == 4 and harness.effects() == ["Risky 21", "Risky 2"]
