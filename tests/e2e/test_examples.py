"""The programs in examples/ run as their docs say, each from a copy in its own directory."""

from __future__ import annotations

import shutil

import pytest
from e2e_support import EXAMPLES, Workspace, only_agent, resume_header, say_lines

ORDERS_OUTPUT = [
    "Starting order processing...",
    "Order 101 charged 25.00",
    "Order 102 charged 40.00",
    "Order 103 charged 12.50",
    "Order 104 charged 99.00",
    "Complete! Summary: 4 orders, 176.50 charged",
]


def copy_example(ws: Workspace, name: str) -> None:
    shutil.copyfile(EXAMPLES / name, ws.root / name)
    shutil.copyfile(EXAMPLES / "playbooks.toml", ws.root / "playbooks.toml")
    responses = name.removesuffix(".pb") + ".responses.yaml"  # recorded model answers, for LLM playbooks
    if (EXAMPLES / responses).exists():
        shutil.copyfile(EXAMPLES / responses, ws.root / responses)


def test_orders_crash_at_the_third_order_then_resume(ws: Workspace) -> None:
    copy_example(ws, "orders.pb")
    crashed = ws.pb("run", "orders.pb", env={"ORDERS_CRASH_AT": "3"})
    assert crashed.returncode == 137, crashed
    assert crashed.out == ORDERS_OUTPUT[:3]
    agent = only_agent(ws)
    assert agent.startswith("my_agent_1_")
    assert ws.counters(agent) == list(range(1, 10))

    resumed = ws.pb("run", "orders.pb", "--resume")
    assert resumed.returncode == 0, resumed
    assert resumed.err == [
        "Loading playbooks from: ['orders.pb']",
        *resume_header(agent, f"{agent}_ckpt_9",
                       "await Say(\"user\", f\"Order {order['id']} charged {result['..."),
        "Execution complete ✅",
    ]
    assert say_lines(crashed, resumed) == ORDERS_OUTPUT
    assert ws.counters(agent) == list(range(1, 18))


@pytest.mark.parametrize(("name", "args", "output"), [
    ("orders.pb", (), ORDERS_OUTPUT),
    ("nested.pb", (), ["apples: 18", "pears: 15", "plums: 15", "Prepared 3 items, total weight 48"]),
    ("fanout.pb", (), ["Bhutan has 6 letters", "Nepal has 5 letters", "India has 5 letters",
                       "Peru has 4 letters"]),
    ("ask_name.pb", ("--input", "Ada", "--input", "Paris"),
     ["What's your name?", "Hello, Ada! Which city are you in?", "Greetings to Paris, Ada."]),
    ("greeter.pb", ("--input", "Ada"),
     ["Hello! I'm the greeter. What's your name?",
      "Ada, green suits you perfectly: you brighten every room you walk into.", "Goodbye, Ada!"]),
])
def test_each_example_runs_to_completion(ws: Workspace, name: str, args: tuple[str, ...],
                                         output: list[str]) -> None:
    copy_example(ws, name)
    result = ws.pb("run", name, *args)
    assert result.returncode == 0, result
    assert result.out == output
    assert result.err == [f"Loading playbooks from: ['{name}']", "Starting execution...", "Execution complete ✅"]
    assert ws.checkpoint_files()  # durability is on in the examples' playbooks.toml


def test_every_example_is_covered() -> None:
    # negotiation.pb is run by test_agents.py.
    assert sorted(p.name for p in EXAMPLES.glob("*.pb")) == [
        "ask_name.pb", "fanout.pb", "greeter.pb", "negotiation.pb", "nested.pb", "orders.pb"]
