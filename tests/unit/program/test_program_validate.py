"""Static validation: a call to a playbook that does not exist is refused before anything runs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from playbooks_worker.errors import ProgramError
from playbooks_worker.program import BUILTIN_PLAYBOOKS, Program, load_program

Load = Callable[[str], Program]
Refuse = Callable[[str], ProgramError]

ORDERS = """
# MyAgent:AI

```python
@playbook
async def FetchOrders() -> list:
    return []

@playbook
async def ProcessOrder(order):
    return order
```

## ProcessOrders

```python
await Step("ProcessOrders:01:QUE")
orders = await {fetch}()
for order in orders:
    result = await ProcessOrder(order)
await Return(orders)
```
"""


def test_misspelled_playbook_is_refused_with_did_you_mean(refuse: Refuse) -> None:
    error = refuse(ORDERS.format(fetch="FetchOrderz"))
    assert error.message == "main.pb:17: 'FetchOrderz' is not a playbook or builtin of agent MyAgent"
    assert error.hint == "did you mean 'FetchOrders'?"


def test_unknown_name_without_a_close_match_lists_the_playbooks(refuse: Refuse) -> None:
    error = refuse(ORDERS.format(fetch="Xylophone"))
    assert error.message == "main.pb:17: 'Xylophone' is not a playbook or builtin of agent MyAgent"
    assert error.hint == "available playbooks: FetchOrders, ProcessOrder, ProcessOrders"


def test_the_correct_program_loads(load: Load) -> None:
    assert load(ORDERS.format(fetch="FetchOrders")).agent("MyAgent").playbooks["ProcessOrders"].kind == "code"


@pytest.mark.parametrize(
    "call", ["await self.Fetch()", "await agent.Fetch()", "Fetch()", "x = [Fetch() for _ in y]"]
)
def test_every_call_form_is_checked(refuse: Refuse, call: str) -> None:
    error = refuse(f"# A\n## Main\n```python\n{call}\n```\n")
    assert error.message == "main.pb:4: 'Fetch' is not a playbook or builtin of agent A"


def test_builtins_and_call_forms_are_accepted(load: Load) -> None:
    calls = "\n".join(f"await {name}()" for name in sorted(BUILTIN_PLAYBOOKS))
    load(f"# A\n## Main\n```python\n{calls}\nawait self.Say('user', 'hi')\nawait agent.Yield('user')\n```\n")


def test_names_bound_in_the_agent_or_the_body_are_accepted(load: Load) -> None:
    load(
        """
        # A
        ```python
        import json as Json
        from collections import OrderedDict, Counter as Tally
        from dataclasses import dataclass

        Threshold = 10

        @dataclass
        class Order:
            id: int

        async def Helper(Callback):
            return Callback()

        def Outer():
            def Nested():
                pass
            return Nested()

        try:
            pass
        except ValueError as Problem:
            Problem()
        ```

        ## Main($Handler)
        ```python
        Local = lambda: 1
        Local()
        Handler()
        await Helper(Order)
        Json.dumps(OrderedDict())
        Tally()
        Order(1)
        Outer()
        ValueError("builtins are fine")
        for Item in []:
            Item()
        with open("x") as Handle:
            Handle()
        [Sq(1) for Sq in []]
        if (Walrus := len):
            Walrus()
        match 1:
            case [*Rest]:
                Rest()
            case {"k": 1, **Others}:
                Others()
            case _ as Anything:
                Anything()
        await B.Ask()
        await Ask()
        await B()
        lower_case_is_not_checked()
        math.Floor(1)
        ```

        # B
        ## Ask
        """
    )


def test_names_bound_in_another_playbook_are_not_visible(refuse: Refuse) -> None:
    error = refuse("# A\n## One\n```python\nMade = 1\n```\n## Two\n```python\nMade()\n```\n")
    assert error.message == "main.pb:8: 'Made' is not a playbook or builtin of agent A"


def test_the_first_error_in_source_order_is_reported(refuse: Refuse) -> None:
    error = refuse(
        "# A\n```python\nasync def tool():\n    await Second()\n    await Third()\n```\n"
        "## Main\n```python\nawait Fourth()\n```\n"
        "# B\n## Main\n```python\nawait Fifth()\n```\n"
    )
    assert error.message.startswith("main.pb:4: 'Second' is not")


def test_calls_inside_python_playbooks_are_checked(refuse: Refuse) -> None:
    error = refuse('# A\n```python\n@playbook\nasync def Main():\n    await Sayy("user", "hi")\n```\n')
    assert error.message == "main.pb:5: 'Sayy' is not a playbook or builtin of agent A"
    assert error.hint == "did you mean 'Say'?"


def test_star_import_makes_names_unknowable(load: Load, refuse: Refuse) -> None:
    load("# A\n```python\nfrom tools import *\n```\n## Main\n```python\nawait Anything()\n```\n")
    # A code playbook's body runs as a function body, where Python itself forbids `import *`.
    error = refuse("# A\n## Main\n```python\nfrom tools import *\nawait Anything()\n```\n")
    assert (
        error.message == "main.pb:4: invalid Python in playbook Main: import * only allowed at module level"
    )


def test_llm_playbooks_are_not_validated(load: Load) -> None:
    load("# A\n## Main\n### Steps\n- 01:QUE Undefined()\n")


def test_error_in_an_imported_block_names_the_imported_file(write: Callable[[str, str], Path]) -> None:
    write("lib/tools.pb", "```python\n@playbook\nasync def Tool():\n    await Missing()\n```\n")
    write("main.pb", "# A\n!import lib/tools.pb\n")
    with pytest.raises(ProgramError) as info:
        load_program("main.pb")
    assert info.value.message.startswith(f"{os.path.join('lib', 'tools.pb')}:4: 'Missing' is not a playbook")
