"""The prompt is rebuilt on resume and its digest compared with the recorded call's: it must be the same text in
every process, whatever the hash seed, whatever addresses objects get."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from playbooks_worker.llm.prompt import first_turn, next_turn, render_callables, render_playbook, stable_repr
from playbooks_worker.program import load_program

PROGRAM = '''
# Shop
Sells fruit.

```python
@playbook
async def Price(item: str, qty: int = 1) -> float:
    """The price of some fruit."""
    return 1.5 * qty
```

## Main
### Triggers
- At the beginning
### Steps
- Ask the user what they want
  - If they do not know, suggest $special
- Price it
### Notes
- Be brief

## Suggest($special: str) -> str
Suggests something.
### Steps
- Suggest $special
'''


class Plain:
    pass


@dataclass
class Basket:
    items: set[str] = field(default_factory=lambda: {"pear", "apple", "fig", "kiwi", "plum", "lime", "date"})
    owner: object = field(default_factory=Plain)


def test_sets_are_sorted_even_when_their_elements_do_not_sort() -> None:
    assert stable_repr({"pear", "apple", "fig"}) == "{'apple', 'fig', 'pear'}"
    assert stable_repr(frozenset({3, 1, 2})) == "frozenset({1, 2, 3})"
    assert stable_repr({1, "a", None}) == "{None, 1, 'a'}"
    assert stable_repr(set()) == "set()" and stable_repr(frozenset()) == "frozenset()"


def test_dicts_sorted_and_no_addresses() -> None:
    assert stable_repr({"b": 1, "a": 2}) == "{'a': 2, 'b': 1}"
    text = stable_repr({"obj": Plain(), "fn": lambda: 1})
    assert " at 0x" not in text
    assert "<test_llm_prompt.Plain object>" in text


def test_dataclasses_are_shown_field_by_field() -> None:
    assert stable_repr(Basket()) == ("Basket(items={'apple', 'date', 'fig', 'kiwi', 'lime', 'pear', 'plum'}, "
                                     "owner=<test_llm_prompt.Plain object>)")


def test_a_long_repr_is_cut_without_leaving_half_an_address() -> None:
    class Long:
        def __repr__(self) -> str:
            return "<Long " + "x" * 300 + f" at {hex(id(self))}>"

    text = stable_repr(Long())
    assert len(text) <= 200 and "0x" not in text


def test_the_playbook_is_rendered_as_written(tmp_path: Path) -> None:
    program_file = tmp_path / "shop.pb"
    program_file.write_text(textwrap.dedent(PROGRAM).lstrip(), encoding="utf-8")
    agent = load_program(program_file).agent("Shop")
    assert render_playbook(agent.playbooks["Main"]) == textwrap.dedent("""\
        ## Main

        ### Triggers
        - At the beginning

        ### Steps
        - Ask the user what they want
          - If they do not know, suggest $special
        - Price it

        ### Notes
        - Be brief""")
    callables = render_callables(agent, {}, {})
    assert "async def Suggest(special: str) -> str:  # Suggests something." in callables


PROMPT_SCRIPT = '''
import json, sys
from dataclasses import dataclass, field
from playbooks_worker.llm.prompt import first_turn, next_turn, render_callables
from playbooks_worker.program import load_program


class Plain:
    pass


@dataclass
class Basket:
    items: set = field(default_factory=lambda: {"pear", "apple", "fig", "kiwi", "plum", "lime", "date"})
    owner: object = field(default_factory=Plain)


agent = load_program(sys.argv[1]).agent("Shop")
state = {"basket": Basket(), "seen": {"b", "a", "c", 1, None}, "tags": frozenset({"x", "y"}), "who": Plain(),
         "nested": {"z": [{"q", "p"}], "a": object()}}
first = first_turn(agent, agent.playbooks["Main"], "Main()", render_callables(agent, {}, {}), state)
later = next_turn(agent.playbooks["Main"], ["Say('user', 'hi') → delivered"], {"choice": {"fig", "pear"}}, state,
                  "line 2: NameError")
print(json.dumps([first, later]))
'''


def test_prompts_are_identical_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    program_file = tmp_path / "shop.pb"
    program_file.write_text(textwrap.dedent(PROGRAM).lstrip(), encoding="utf-8")
    script = tmp_path / "prompt_script.py"
    script.write_text(PROMPT_SCRIPT, encoding="utf-8")
    outputs = []
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, str(script), str(program_file)], capture_output=True, text=True,
                              env=env, check=True, timeout=60)
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1] == outputs[2]
    first, later = outputs[0]
    assert "Agent state: {'basket': Basket(items={'apple', 'date', 'fig'" in first
    assert "'seen': {None, 1, 'a', 'b', 'c'}" in first
    assert " at 0x" not in first + later
    assert first.endswith("Execute Main() from step 01.")
    assert "ERROR: your code failed:\nline 2: NameError" in later
    assert "Local variables: choice = {'fig', 'pear'}" in later


def test_first_and_next_turn_in_process(tmp_path: Path) -> None:
    program_file = tmp_path / "shop.pb"
    program_file.write_text(textwrap.dedent(PROGRAM).lstrip(), encoding="utf-8")
    agent = load_program(program_file).agent("Shop")
    text = first_turn(agent, agent.playbooks["Main"], "Main()", "", {})
    assert text.startswith("You are agent Shop. Sells fruit.")
    assert "Agent state" not in text  # empty state is left out
    later = next_turn(agent.playbooks["Main"], [], {}, {}, None)
    assert later == "Continue executing Main from where you stopped."
