"""Every `.pb` and `.pbasm` in the repository (tests/ and examples/) parses, and the corpus written in real
Playbooks syntax for LLM playbooks (tests/fixtures/programs/llm/) parses into what its text says.

Programs that are broken on purpose live in a folder named `broken/`; they are checked to be refused, with
`file:line: what` and a hint, instead. A file that another program `!import`s is a fragment (tools, a list of
steps), checked as part of the program that imports it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from playbooks_worker.errors import ProgramError
from playbooks_worker.llm.prompt import render_playbook
from playbooks_worker.program import load_program
from playbooks_worker.program.imports import IMPORT_RE

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT / "tests" / "fixtures" / "programs" / "llm"
BROKEN = "broken"  # the folder name that marks deliberately broken programs


def every_file() -> list[Path]:
    return sorted(p for base in (ROOT / "tests", ROOT / "examples") for pattern in ("*.pb", "*.pbasm")
                  for p in base.rglob(pattern))


def imported() -> dict[Path, Path]:
    """Fragment -> a program that imports it."""
    found = {}
    for path in every_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            match = IMPORT_RE.match(line)
            if match:
                found[(path.parent / match.group(2).strip()).resolve()] = path
    return found


def programs(*, broken: bool) -> list[Path]:
    fragments = imported()
    return [p for p in every_file()
            if (BROKEN in p.relative_to(ROOT).parts) == broken and p.resolve() not in fragments]


def ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


PROGRAMS = programs(broken=False)
BROKEN_PROGRAMS = programs(broken=True)


def test_the_corpus_is_found() -> None:
    names = {p.name for p in PROGRAMS}
    assert {"travel-agent.pb", "order-support.pbasm", "country-facts.pb", "weekly-sync.pb"} <= names
    assert {"hello-world.pbasm", "orders.pb", "tax.pb"} <= names
    assert any(p.parent.name == "examples" for p in PROGRAMS)
    assert len(BROKEN_PROGRAMS) >= 2


@pytest.mark.parametrize("path", PROGRAMS, ids=ids(PROGRAMS))
def test_every_program_parses(path: Path) -> None:
    program = load_program(path)
    assert program.agents and program.entry_points()
    for agent in program.agents:
        for playbook in agent.playbooks.values():
            if playbook.kind == "llm":
                rendered = render_playbook(playbook)  # what the model would be shown
                assert all(step.text.split("\n")[0] in rendered for step in playbook.steps)


def test_fragments_are_read_by_the_programs_that_import_them() -> None:
    fragments = imported()
    assert (ROOT / "tests" / "fixtures" / "programs" / "lib" / "order_tools.pb") in fragments
    for fragment, importer in fragments.items():
        assert str(fragment) in load_program(importer).sources, (fragment, importer)


@pytest.mark.parametrize("path", BROKEN_PROGRAMS, ids=ids(BROKEN_PROGRAMS))
def test_broken_programs_are_refused_with_file_and_line(path: Path) -> None:
    with pytest.raises(ProgramError) as info:
        load_program(path)
    assert info.value.message.startswith(f"{path}:"), info.value.message
    assert info.value.hint


def test_source_syntax_frontmatter_metadata_multiline_nested_import_and_notes() -> None:
    program = load_program(CORPUS / "travel-agent.pb")
    assert program.frontmatter["title"] == "Travel agent"
    [agent] = program.agents
    assert agent.name == "TravelAgent"
    assert agent.description.startswith("You plan short trips for busy people. Today is {date.today()")
    assert [(p.name, p.kind) for p in agent.playbooks.values()] == [
        ("RecordBudget", "python"), ("Distance", "python"), ("Main", "llm"), ("PlanTrip", "llm"),
        ("OnBudget", "llm")]
    main = agent.playbooks["Main"]
    assert main.description == "The first thing that runs." and main.is_begin
    first, ask, _plan, anything_else, goodbye = main.steps
    assert first.text == ("Greet the user and ask where they are travelling from; store it\n"
                          "as $origin:str and keep the greeting to one sentence")
    assert [c.text for c in ask.children] == ["If the user is undecided", "Otherwise"]
    assert ask.children[0].children[0].children[0].text == "Prefer cities reachable by train"  # three deep
    # The imported steps keep their own file and line.
    assert anything_else.location.file.endswith("parts/closing-steps.md") and anything_else.location.line == 1
    assert goodbye.text == "Say goodbye and end the program"
    assert main.notes == ["Never book anything: only plan",
                          "Keep every message under three sentences;\nlong answers lose busy people"]
    trip = agent.playbooks["PlanTrip"]
    assert trip.metadata == {"public": True, "export": True}
    assert [(p.name, p.annotation, p.is_state) for p in trip.params] == [
        ("origin", "str", True), ("destination", "str", True)]
    assert trip.returns == "str"
    assert agent.playbooks["OnBudget"].triggers == ["When the user mentions how much they want to spend"]
    assert agent.playbooks["RecordBudget"].public
    rendered = render_playbook(main)
    assert "- Greet the user and ask where they are travelling from; store it\n  as $origin:str" in rendered
    assert "      - Prefer cities reachable by train" in rendered
    assert "- Keep every message under three sentences;\n  long answers lose busy people" in rendered


def test_compiled_pbasm_with_step_codes_public_json_and_two_agents() -> None:
    program = load_program(CORPUS / "order-support.pbasm")
    support, billing = program.agents
    assert (support.name, billing.name) == ("OrderSupportAgent", "BillingClerk")
    assert support.metadata == {"model": "gpt-4o-mini", "startup_mode": "default"}
    main = support.playbooks["Main"]
    assert main.signature == "Main() -> None" and main.triggers == ["T1:BGN At the beginning"] and main.is_begin
    assert [s.text.split(" ")[0] for s in main.steps] == [
        "01:QUE", "02:YLD", "03:CND", "04:QUE", "05:CHK", "06:QUE", "07:CND", "08:TNK", "09:YLD"]
    assert [c.text for c in main.steps[2].children] == [
        "03.01:QUE Say(user, Explain that order ids look like ORD-123 and ask again)", "03.02:YLD for user",
        "03.03:JMP 03"]
    assert main.notes == ["N1 Never promise a delivery date", "N2 Keep answers under three sentences"]
    assert support.playbooks["LookUpOrder"].public
    refund = billing.playbooks["Refund"]  # the older `## public: Name(...)` heading
    assert refund.public and [(p.name, p.annotation, p.default) for p in refund.params] == [
        ("order_id", None, None), ("amount", "float", "0.0")]
    assert refund.triggers == ["T1:EVT When an agent asks for a refund"] and not refund.is_begin
    assert [(p.name, p.annotation, p.default) for p in billing.playbooks["X"].params] == [("num", "int", "10")]
    assert billing.playbooks["Invoice"].kind == "python" and billing.playbooks["Invoice"].public
    assert billing.metadata == {"startup_mode": "standby"}
    assert [(a.name, p.name) for a, p in program.entry_points()] == [("OrderSupportAgent", "Main")]


def test_python_and_llm_playbooks_side_by_side_and_a_human_agent() -> None:
    facts = load_program(CORPUS / "country-facts.pb").agent("CountryFactsAgent")
    assert [(p.name, p.kind) for p in facts.playbooks.values()] == [
        ("process_countries", "python"), ("Main", "llm"), ("GetCountryFact", "llm")]
    assert facts.playbooks["GetCountryFact"].params[0].is_state
    sync = load_program(CORPUS / "weekly-sync.pb")
    lead, engineer = sync.agents
    assert (lead.name, engineer.name, engineer.kind) == ("TeamLead", "Engineer", "Human")
    assert engineer.metadata == {"name": "Sam", "delivery_channel": "streaming"}
    meeting = lead.playbooks["WeeklySync"]
    assert meeting.is_begin and meeting.description == "meeting: true\nrequired_attendees: [Engineer]"
