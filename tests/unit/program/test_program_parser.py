"""H1 agents, H2 playbooks, H3 sections: the parser on real Playbooks syntax."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from playbooks_worker.errors import ProgramError
from playbooks_worker.program import Program, SourceLocation, StepDef

Load = Callable[[str], Program]
Refuse = Callable[[str], ProgramError]

GUIDE = """
# MyAgent:AI

```python
@playbook
async def FetchOrders() -> list:
    return [{"id": 1}]

@playbook
async def ProcessOrder(order: dict) -> dict:
    return order

@playbook
async def SaveBatch(results: list) -> dict:
    return {"count": len(results)}

@playbook
async def GenerateSummary(batch_result: dict) -> str:
    return str(batch_result)
```

## ProcessOrders

```python
await Step("ProcessOrders:01:QUE")
await Say("user", "Starting order processing...")
orders = await FetchOrders()
for order in orders:
    result = await ProcessOrder(order)
batch_result = await SaveBatch(results)
summary = await GenerateSummary(batch_result)
await Say("user", f"Complete! {summary}")
await Return(summary)
```
"""

HELLO_PBASM = """
<!--
============================================
Playbooks Assembly Language v0.7.1
============================================
-->

# HelloWorld
This is a hello world demo for the playbooks system

## HelloWorldDemo() -> None
metadata:
  public: true
---
This playbooks demo prints a hello playbooks message

### Triggers
- T1:BGN At the beginning

### Steps
- 01:QUE Say(user, Greet the user with a hello playbooks message)
- 02:QUE Say(user, Tell the user that this is a demo for the playbooks system)
- 03:QUE Say(user, Say goodbye to the user)
- 04:YLD for exit

```public.json
[{"name": "HelloWorldDemo", "triggers": ["T1:BGN At the beginning"], "is_bgn": true, "cli_entry": true}]
```
"""


def test_the_guides_code_playbook(load: Load) -> None:
    program = load(GUIDE)
    [agent] = program.agents
    assert (agent.name, agent.kind, agent.location) == ("MyAgent", "AI", SourceLocation("main.pb", 1))
    assert list(agent.playbooks) == [
        "FetchOrders",
        "ProcessOrder",
        "SaveBatch",
        "GenerateSummary",
        "ProcessOrders",
    ]
    orders = agent.playbooks["ProcessOrders"]
    assert (orders.kind, orders.signature, orders.location) == (
        "code",
        "ProcessOrders",
        SourceLocation("main.pb", 21),
    )
    assert orders.code is not None
    assert orders.code.location == SourceLocation("main.pb", 24)
    assert orders.code.code.splitlines()[0] == 'await Step("ProcessOrders:01:QUE")'
    assert orders.code.code.splitlines()[-1] == "await Return(summary)"
    assert [b.location for b in agent.code_blocks] == [SourceLocation("main.pb", 4)]
    assert agent.code_blocks[0].code.startswith("@playbook\nasync def FetchOrders()")
    assert program.entry_points() == [(agent, orders)]


def test_compiled_hello_world(write: Callable[..., object]) -> None:
    from playbooks_worker.program import load_program

    write("hello.pbasm", HELLO_PBASM)
    program = load_program("hello.pbasm")
    [agent] = program.agents
    assert (agent.name, agent.description, agent.metadata) == (
        "HelloWorld",
        "This is a hello world demo for the playbooks system",
        {},
    )
    demo = agent.playbooks["HelloWorldDemo"]
    assert (demo.kind, demo.signature, demo.params, demo.returns) == (
        "llm",
        "HelloWorldDemo() -> None",
        [],
        "None",
    )
    assert demo.metadata == {"public": True} and demo.public
    assert demo.description == "This playbooks demo prints a hello playbooks message"
    assert demo.triggers == ["T1:BGN At the beginning"] and demo.is_begin
    assert [s.text for s in demo.steps] == [
        "01:QUE Say(user, Greet the user with a hello playbooks message)",
        "02:QUE Say(user, Tell the user that this is a demo for the playbooks system)",
        "03:QUE Say(user, Say goodbye to the user)",
        "04:YLD for exit",
    ]
    assert [s.location.line for s in demo.steps] == [20, 21, 22, 23]
    assert agent.code_blocks == []
    assert program.entry_points() == [(agent, demo)]


@pytest.mark.parametrize(
    ("heading", "name", "kind"),
    [
        ("# MyAgent", "MyAgent", "AI"),
        ("# MyAgent:AI", "MyAgent", "AI"),
        ("# Order Support Agent", "OrderSupportAgent", "AI"),
        ("# Magi_Gaspar", "MagiGaspar", "AI"),
        ("# Tax accountant:AI", "TaxAccountant", "AI"),
        ("# User:Human", "User", "Human"),
    ],
)
def test_agent_headings(load: Load, heading: str, name: str, kind: str) -> None:
    [agent] = load(f"{heading}\n\n## Main\n").agents
    assert (agent.name, agent.kind) == (name, kind)


@pytest.mark.parametrize(
    ("heading", "what", "hint"),
    [
        ("# Remote:MCP", "main.pb:1: MCP agents are not supported yet", "@playbook"),
        ("# Bot:Robot", "main.pb:1: unknown agent type 'Robot'", "'# Name:Human'"),
        ("# 42 things", "main.pb:1: agent name '42 things' does not make a name", "letter"),
    ],
)
def test_bad_agent_headings(refuse: Refuse, heading: str, what: str, hint: str) -> None:
    error = refuse(f"{heading}\n\n## Main\n")
    assert error.message.startswith(what)
    assert error.hint and hint in error.hint


def test_agent_description_and_metadata_block(load: Load) -> None:
    program = load(
        """
        # Billing Clerk
        metadata:
          startup_mode: standby
          tags:
          - money
        ---
        Handles refunds.

        And invoices.

        ## Main
        """
    )
    agent = program.agent("BillingClerk")
    assert agent.metadata == {"startup_mode": "standby", "tags": ["money"]}
    assert agent.description == "Handles refunds.\n\nAnd invoices."


def test_loose_key_value_lines_are_just_description(load: Load) -> None:
    agent = load("# Tax accountant\npublic: true\nmodel: gpt-4o\n\n## Main\n").agent("TaxAccountant")
    assert agent.metadata == {}
    assert agent.description == "public: true\nmodel: gpt-4o"


def test_metadata_without_a_closing_rule_is_all_metadata(load: Load) -> None:
    playbook = load("# A\n\n## Main\nmetadata:\n  public: true\n").agent("A").playbooks["Main"]
    assert (playbook.metadata, playbook.description) == ({"public": True}, "")


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("# A\n\n## Main\nmetadata:\n  public: [true\n---\n", "main.pb:5: invalid YAML in metadata"),
        ("# A\nmetadata: 3\n---\n## Main\n", "main.pb:2: metadata must be a YAML mapping"),
        (
            "# A\nmetadata:\n  remote: {type: mcp}\n---\n## Main\n",
            "main.pb:1: remote (MCP) agents are not supported",
        ),
    ],
)
def test_bad_metadata(refuse: Refuse, text: str, what: str) -> None:
    assert refuse(text).message.startswith(what)


def test_python_blocks_directly_under_the_agent_only(load: Load) -> None:
    agent = load(
        """
        # A
        Text.

        ```python
        X = 1
        ```

        ```json
        {"not": "python"}
        ```

        ```public.json
        []
        ```

        ## Main
        ### Steps
        - Do it

        ```python
        Y = 2
        ```

        ### Helpers
        ```python
        Z = 3
        ```
        """
    ).agent("A")
    assert [(b.code, b.location.line) for b in agent.code_blocks] == [("X = 1\n", 5)]
    main = agent.playbooks["Main"]
    assert (main.kind, main.code) == ("llm", None)


def test_llm_playbook_sections(load: Load) -> None:
    main = (
        load(
            """
        # A

        ## Main($order_id: str, retries: int = 2) -> dict
        Looks after {order_id}.

        ### trigger
        - At the beginning
        - T2:EVT When the user sends a message

        ### STEPS
        - 01:QUE Say(user, Ask for the $order_id:str)
        - 02:CND While the order is not found
          - 02.01:QUE Say(user, Ask again)
            - 02.01.01:EXE nested deeper
          - 02.02:JMP 02
        - 03:RET $order

        ### Examples
        - ignored

        ### Notes
        - N1 Be brief
          - even briefer
        - N2 Be kind
        """
        )
        .agent("A")
        .playbooks["Main"]
    )
    assert main.kind == "llm"
    assert main.signature == "Main($order_id: str, retries: int = 2) -> dict"
    assert [p.name for p in main.params] == ["order_id", "retries"]
    assert main.description == "Looks after {order_id}."
    assert main.triggers == ["At the beginning", "T2:EVT When the user sends a message"]
    assert main.notes == ["N1 Be brief", "even briefer", "N2 Be kind"]
    loop = main.steps[1]
    assert loop == StepDef(
        "02:CND While the order is not found",
        SourceLocation("main.pb", 12),
        [
            StepDef(
                "02.01:QUE Say(user, Ask again)",
                SourceLocation("main.pb", 13),
                [StepDef("02.01.01:EXE nested deeper", SourceLocation("main.pb", 14))],
            ),
            StepDef("02.02:JMP 02", SourceLocation("main.pb", 15)),
        ],
    )
    assert [s.text for s in main.steps] == [
        "01:QUE Say(user, Ask for the $order_id:str)",
        "02:CND While the order is not found",
        "03:RET $order",
    ]


def test_prose_steps_and_numbered_lists(load: Load) -> None:
    playbook = (
        load(
            """
        # Greeter

        ## Hello world demo
        ### Steps
        1. Greet the user
        2. Tell a joke
           - only a short one
        3. End program
        """
        )
        .agent("Greeter")
        .playbooks["HelloWorldDemo"]
    )
    assert [s.text for s in playbook.steps] == ["Greet the user", "Tell a joke", "End program"]
    assert [c.text for c in playbook.steps[1].children] == ["only a short one"]


def test_react_playbook_without_steps_or_code(load: Load) -> None:
    playbook = (
        load("# A\n\n## Get tax rate($gross_income)\nFind the rate.\n").agent("A").playbooks["GetTaxRate"]
    )
    assert (playbook.kind, playbook.steps, playbook.code) == ("llm", [], None)
    assert playbook.params[0].name == "gross_income" and playbook.params[0].is_state
    assert playbook.description == "Find the rate."


def test_code_playbook_keeps_its_triggers_and_description(load: Load) -> None:
    playbook = (
        load(
            """
        # A

        ## Main
        metadata:
          public: true
        ---
        Greets.

        ```python
        await Say("user", "hi")
        ```

        ### Triggers
        - At the beginning
        """
        )
        .agent("A")
        .playbooks["Main"]
    )
    assert (playbook.kind, playbook.description, playbook.public, playbook.is_begin) == (
        "code",
        "Greets.",
        True,
        True,
    )


def test_legacy_public_prefix_in_the_heading(load: Load) -> None:
    playbook = (
        load("# A\n\n## public: GetCountrySecret($country) -> str\n").agent("A").playbooks["GetCountrySecret"]
    )
    assert playbook.public
    assert playbook.signature == "public: GetCountrySecret($country) -> str"


@pytest.mark.parametrize(
    ("text", "what"),
    [
        (
            "# A\n\n## Main\n\n## Main()\n",
            "main.pb:5: playbook 'Main' is defined twice in agent A (first at main.pb:3)",
        ),
        (
            "# A\n```python\n@playbook\nasync def Main():\n    pass\n```\n## Main\n",
            "main.pb:7: playbook 'Main' is defined twice in agent A (first at main.pb:4)",
        ),
        ("# A\n\n## Main\n# A\n## Other\n", "main.pb:4: agent 'A' is defined twice (first at main.pb:1)"),
        ("# A\nJust words.\n", "main.pb:1: agent A has no playbooks"),
        ("Some words.\n", "main.pb:1: no agents: a program needs at least one '# AgentName' heading"),
        ("", "main.pb:1: no agents"),
        ("## Main\n# A\n", "main.pb:1: playbook '## Main' is not inside an agent"),
        (
            "# A\n## Main\n```python\nx = 1\n```\n```python\ny = 2\n```\n",
            "main.pb:6: playbook Main has a second ```python block (the first, at main.pb:3, is its body)",
        ),
        ("# A\n## Main\n```python\nx = 1\n", "main.pb:3: the ```python block opened here is never closed"),
    ],
)
def test_structural_errors(refuse: Refuse, text: str, what: str) -> None:
    error = refuse(text)
    assert error.message.startswith(what)
    assert error.hint


def test_human_agent_needs_no_playbooks(load: Load) -> None:
    program = load("# User:Human\nThe person at the keyboard.\n\n# A\n## Main\n")
    assert [(a.name, a.kind, len(a.playbooks)) for a in program.agents] == [
        ("User", "Human", 0),
        ("A", "AI", 1),
    ]


def test_public_json_anywhere_is_ignored(load: Load) -> None:
    program = load(
        '# A\n```public.json\n[{"name": "Main"}]\n```\n'
        "## Main\n### Steps\n- 01:RET\n```public.json\n[]\n```\n"
    )
    main = program.agent("A").playbooks["Main"]
    assert [s.text for s in main.steps] == ["01:RET"]
    assert program.agent("A").code_blocks == []


def test_entry_points_prefer_begin_triggers(load: Load) -> None:
    program = load(
        """
        # User:Human

        # First
        ## Main

        # Second
        ## Greet
        ### Triggers
        - When program starts

        # Third
        ```python
        @playbook(triggers=["T1:BGN At the beginning"])
        async def Start():
            pass
        ```
        """
    )
    assert [(a.name, p.name) for a, p in program.entry_points()] == [("Second", "Greet"), ("Third", "Start")]


def test_entry_point_falls_back_to_main_then_the_first_playbook(load: Load) -> None:
    program = load("# First\n## Helper\n\n# Second\n## Other\n## Main\n")
    assert [(a.name, p.name) for a, p in program.entry_points()] == [("Second", "Main")]
    program = load("# User:Human\n## Chat\n\n# First\n## Alpha\n## Beta\n")
    assert [(a.name, p.name) for a, p in program.entry_points()] == [("First", "Alpha")]


def test_a_code_playbook_may_follow_its_triggers(tmp_path) -> None:
    from playbooks_worker.program import parse_text

    program = parse_text(
        "# A\n\n## Main\n### Triggers\n- At the beginning\n\n```python\nawait Say('user', 'hi')\n```\n",
        tmp_path / "a.pb",
    )
    main = program.agents[0].playbooks["Main"]
    assert main.kind == "code" and main.is_begin
    assert main.code is not None and main.code.location.line == 8
