"""`playbooks check PROGRAM.pb…`: parse and validate only."""

from __future__ import annotations

import sys

import click

from playbooks_cli.common import json_option, print_json


@click.command()
@click.argument("programs", nargs=-1, required=True, metavar="PROGRAM.pb...")
@json_option
def check(programs: tuple[str, ...], as_json: bool) -> None:
    """Parse and validate PROGRAM.pb files: list their agents and playbooks (exit 0), or the errors (exit 2)."""
    from playbooks_worker.errors import ProgramError
    from playbooks_worker.program import load_program

    report, failed = [], False
    for path in programs:
        try:
            program = load_program(path)
        except ProgramError as exc:
            failed = True
            report.append({"program": path, "ok": False, "error": exc.message, "hint": exc.hint})
            continue
        entries = {(a.name, p.name) for a, p in program.entry_points()}
        report.append({
            "program": path,
            "ok": True,
            "agents": [
                {"name": a.name, "kind": a.kind, "line": a.location.line,
                 "playbooks": [{"name": p.name, "kind": p.kind, "line": p.location.line,
                                "params": [q.name for q in p.params], "entry": (a.name, p.name) in entries,
                                "triggers": p.triggers, "public": p.public}
                               for p in a.playbooks.values()]}
                for a in program.agents
            ],
        })
    if as_json:
        print_json(report)
    else:
        for item in report:
            if not item["ok"]:
                click.echo(f"❌ {item['error']}", err=True)
                if item["hint"]:
                    click.echo(f"   {item['hint']}", err=True)
                continue
            click.echo(f"✅ {item['program']}")
            for agent in item["agents"]:
                click.echo(f"  {agent['name']} ({agent['kind']})")
                for pb in agent["playbooks"]:
                    entry = "  ← entry" if pb["entry"] else ""
                    click.echo(f"    {pb['name']}({', '.join(pb['params'])})  {pb['kind']}  "
                               f"line {pb['line']}{entry}")
    sys.exit(2 if failed else 0)
