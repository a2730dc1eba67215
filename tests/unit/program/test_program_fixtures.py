"""The sample programs in tests/fixtures/programs parse, and every refusal reads `file:line: what`."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from playbooks_worker.errors import ProgramError
from playbooks_worker.program import Program, SourceLocation, load_program

PROGRAMS = Path(__file__).resolve().parents[2] / "fixtures" / "programs"


def test_every_fixture_parses() -> None:
    paths = sorted(PROGRAMS.glob("*.pb*"))
    assert [p.name for p in paths] == ["hello-world.pbasm", "orders.pb", "support-desk.pb", "tax.pb"]
    for path in paths:
        program = load_program(path)
        assert program.agents and program.digest and str(path) in program.sources


def test_hello_world_pbasm() -> None:
    program = load_program(PROGRAMS / "hello-world.pbasm")
    [(agent, demo)] = program.entry_points()
    assert (agent.name, demo.name, demo.public, len(demo.steps)) == ("HelloWorld", "HelloWorldDemo", True, 4)


def test_orders_guide_program_with_imported_tools() -> None:
    program = load_program(PROGRAMS / "orders.pb")
    assert program.frontmatter == {"title": "Order processing", "author": "ops"}
    agent = program.agent("MyAgent")
    assert [(p.name, p.kind) for p in agent.playbooks.values()] == [
        ("FetchOrders", "python"),
        ("ProcessOrder", "python"),
        ("SaveBatch", "python"),
        ("GenerateSummary", "python"),
        ("ProcessOrders", "code"),
    ]
    assert agent.code_blocks[0].location == SourceLocation(str(PROGRAMS / "lib" / "order_tools.pb"), 2)
    body = agent.playbooks["ProcessOrders"].code
    assert body is not None and body.location == SourceLocation(str(PROGRAMS / "orders.pb"), 13)
    assert len(program.sources) == 2
    # No begin trigger, no Main: the first `##` playbook runs, not a tool its python block defines.
    assert [(a.name, p.name) for a, p in program.entry_points()] == [("MyAgent", "ProcessOrders")]


def test_support_desk_multi_agent() -> None:
    program = load_program(PROGRAMS / "support-desk.pb")
    assert [(a.name, a.kind) for a in program.agents] == [
        ("Customer", "Human"),
        ("OrderSupportAgent", "AI"),
        ("BillingClerk", "AI"),
    ]
    support, billing = program.agent("OrderSupportAgent"), program.agent("BillingClerk")
    main = support.playbooks["Main"]
    assert main.triggers == ["At the beginning"]
    assert main.notes == ["Never promise a delivery date", "Keep answers under three sentences"]
    assert [len(s.children) for s in main.steps] == [0, 2, 1, 0]
    assert support.playbooks["LookUpOrder"].public
    assert billing.metadata == {"startup_mode": "standby"}
    refund = billing.playbooks["Refund"]
    assert [(p.name, p.annotation, p.default, p.is_state) for p in refund.params] == [
        ("order_id", None, None, True),
        ("amount", "float", "0.0", False),
    ]
    assert [(a.name, p.name) for a, p in program.entry_points()] == [("OrderSupportAgent", "Main")]


def test_tax_program_with_python_playbooks() -> None:
    program = load_program(PROGRAMS / "tax.pb")
    host, accountant = program.agents
    assert (host.name, accountant.name) == ("Host", "TaxAccountant")
    assert host.playbooks["Main"].kind == "python" and host.playbooks["Main"].is_begin
    assert host.playbooks["CalculateTax"].public
    rate = accountant.playbooks["GetTaxRate"]
    assert (rate.signature, rate.params[0].name, rate.params[0].is_state) == (
        "Get tax rate($gross_income)",
        "gross_income",
        True,
    )
    assert rate.description == "public: true"  # loose key: value lines stay prose in a source file
    assert [s.text for s in rate.steps] == ["If $gross_income < 100000", "Otherwise"]
    assert list(accountant.playbooks) == ["GetTaxRate", "TaxStrategyMeeting"]
    assert [(a.name, p.name) for a, p in program.entry_points()] == [("Host", "Main")]


LOCATED = re.compile(r"^[^\s:]+:\d+: \S")

BAD_PROGRAMS = [
    "",
    "just prose\n",
    "---\ntitle: [\n---\n# A\n## Main\n",
    "# A\n",
    "# A:MCP\n## Main\n",
    "# A:Robot\n## Main\n",
    "# 9\n## Main\n",
    "# A\n## Main(\n",
    "# A\n## Main\n## Main\n",
    "# A\n## Main\n```python\nx = (\n```\n",
    "# A\n## Main\n```python\nawait Nope()\n```\n",
    "# A\n```python\n@playbook(triggers=3)\ndef Main(): pass\n```\n",
    "# A\nmetadata:\n  x: [\n---\n## Main\n",
    "# A\n## Main\n!import missing.pb\n",
    "# A\n## Main\n!import main.pb\n",
    "# A\n## Main\n```python\nunclosed\n",
]


@pytest.mark.parametrize("text", BAD_PROGRAMS)
def test_every_refusal_starts_with_file_and_line(write: Callable[[str, str], Path], text: str) -> None:
    write("main.pb", text)
    with pytest.raises(ProgramError) as info:
        load_program("main.pb")
    assert LOCATED.match(info.value.message), info.value.message
    assert info.value.message.startswith("main.pb:")
    assert info.value.hint


def test_parse_result_is_a_program() -> None:
    assert isinstance(load_program(str(PROGRAMS / "tax.pb")), Program)
