"""```python blocks: @playbook functions read statically, syntax errors mapped to the .pb line."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from playbooks_worker.errors import ProgramError
from playbooks_worker.program import Param, Program, SourceLocation

Load = Callable[[str], Program]
Refuse = Callable[[str], ProgramError]

TOOLS = '''
# Tax Desk
Answers tax questions.

```python
import math
from decimal import Decimal as D

RATE = 0.25


@playbook(triggers=["When program starts"], public=True, hidden=False, export=["x", 1])
async def Main():
    """Greet the user.

    Then hand over to the accountant.
    """
    await Say("user", "Hello")


@playbook
def CalculateTax(gross_income: float, tax_rate: float = RATE, *, rounding: str = "up") -> float:
    return gross_income * tax_rate


@playbook(description="Square root, for the LLM", public=IS_PUBLIC)
async def Root(num, /, *args, scale=1, **kwargs) -> "float":
    return math.sqrt(num) * scale


async def helper():
    return D(1)


def outer():
    @playbook
    async def Inner():
        pass
```
'''


def test_python_playbooks(load: Load) -> None:
    agent = load(TOOLS).agent("TaxDesk")
    assert list(agent.playbooks) == ["Main", "CalculateTax", "Root"]
    main = agent.playbooks["Main"]
    assert (main.kind, main.location, main.signature) == ("python", SourceLocation("main.pb", 12), "Main()")
    assert main.triggers == ["When program starts"] and main.is_begin
    assert main.metadata == {"public": True, "hidden": False, "export": ["x", 1]} and main.public
    assert main.description == "Greet the user.\n\nThen hand over to the accountant."
    assert main.code is None and main.steps == []

    tax = agent.playbooks["CalculateTax"]
    assert tax.location == SourceLocation("main.pb", 21)
    assert tax.params == [
        Param("gross_income", "float"),
        Param("tax_rate", "float", "RATE"),
        Param("rounding", "str", '"up"'),
    ]
    assert tax.returns == "float"
    assert (
        tax.signature
        == 'CalculateTax(gross_income: float, tax_rate: float = RATE, *, rounding: str = "up") -> float'
    )
    assert (tax.triggers, tax.metadata, tax.public) == ([], {}, False)

    root = agent.playbooks["Root"]
    assert root.signature == 'Root(num, /, *args, scale=1, **kwargs) -> "float"'
    assert [p.name for p in root.params] == ["num", "scale"]
    # A non-literal keyword is only known at run time; `description=` stands in for a missing docstring.
    assert root.metadata == {"description": "Square root, for the LLM"}
    assert root.description == "Square root, for the LLM"


@pytest.mark.parametrize("triggers", ['"At the beginning"', "['When program starts', 'T2:CND On error']"])
def test_trigger_literals(load: Load, triggers: str) -> None:
    text = f"# A\n```python\n@playbook(triggers={triggers})\nasync def Main():\n    pass\n```\n"
    main = load(text).agent("A").playbooks["Main"]
    assert main.triggers and all(isinstance(t, str) for t in main.triggers)


@pytest.mark.parametrize("triggers", ["[1, 2]", "TRIGGERS", "{'a': 1}"])
def test_bad_triggers(refuse: Refuse, triggers: str) -> None:
    error = refuse(
        f"# A\n```python\n@playbook(\n    triggers={triggers})\nasync def Main():\n    pass\n```\n"
    )
    assert error.message == "main.pb:4: triggers must be a list of strings"


def test_python_only_agent(load: Load) -> None:
    program = load(
        """
        # Secret Keeper
        ```python
        @playbook(triggers=["At the beginning"])
        async def Main():
            await Say("user", "What's your name?")
            agent.state.name = await WaitForMessage("user")
            await EndProgram()
        ```
        """
    )
    [(agent, main)] = program.entry_points()
    assert (agent.name, main.name, main.kind) == ("SecretKeeper", "Main", "python")


def test_code_playbook_allows_top_level_await_and_return(load: Load) -> None:
    playbook = (
        load(
            """
        # A
        ## Main
        ```python
        total = 0
        async for x in numbers():
            total += x
        if total > 10:
            return total
        await Return(total)
        ```
        """
        )
        .agent("A")
        .playbooks["Main"]
    )
    assert playbook.kind == "code"


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        # an agent block: the error names the .pb line, not the line in the block
        (
            "# A\nWords.\n\n```python\nx = 1\ndef broken(:\n    pass\n```\n## Main\n",
            "main.pb:6",
            "invalid syntax",
        ),
        # a code playbook body
        ("# A\n## Main\n\n```python\nx = 1\n\ny = (\n```\n", "main.pb:7", "never closed"),
        ("# A\n## Main\n```python\nfor x in y:\n    pass\nbreak\n```\n", "main.pb:6", "'break' outside loop"),
        # top-level return and await belong to playbook bodies, not to agent blocks
        ("# A\n```python\nreturn 1\n```\n## Main\n", "main.pb:3", "'return' outside function"),
        (
            "# A\n```python\nx = 1\n\nasync def f():\n    yield 1\n    return 2\n```\n## Main\n",
            "main.pb:7",
            "return",
        ),
    ],
)
def test_syntax_errors_name_the_pb_line(refuse: Refuse, text: str, where: str, what: str) -> None:
    error = refuse(text)
    assert error.message.startswith(f"{where}: invalid Python in ")
    assert what in error.message
    assert error.hint


def test_syntax_error_hint_shows_the_line(refuse: Refuse) -> None:
    error = refuse("# A\n## Main\n```python\nresult = await Fetch(\n    1 2)\n```\n")
    assert error.message.startswith("main.pb:5: invalid Python in playbook Main: ")
    assert error.hint == "the line reads: 1 2)"


def test_python_warnings_are_not_errors(load: Load) -> None:
    # An invalid escape is a warning in Python; under `-W error` it would otherwise become a SyntaxError.
    program = load('# A\n```python\nPATTERN = "\\d+"\n```\n## Main\n```python\nok = PATTERN is "x"\n```\n')
    assert program.agent("A").playbooks["Main"].kind == "code"


def test_null_bytes_are_a_program_error(refuse: Refuse) -> None:
    assert refuse("# A\n## Main\n```python\nx = 1\0\n```\n").message.startswith("main.pb:4: invalid Python")


def test_nothing_is_executed(load: Load) -> None:
    load("# A\n```python\nimport os\nos.mkdir('executed')\n```\n## Main\n```python\nos.mkdir('ran')\n```\n")
    assert not os.path.exists("executed") and not os.path.exists("ran")
