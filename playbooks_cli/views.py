"""Rich tables for a terminal: `runs`, `status` and `top`. Piped output stays the plain text of runs.py.

rich is imported inside each function, so commands that never draw a table never pay for it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

STATE_STYLES = {
    "succeeded": "green", "failed": "red", "cancelled": "magenta", "waiting": "yellow", "queued": "cyan",
    "running": "bold blue", "interrupted": "yellow", "running (lease expired)": "bold red", "done": "green",
    "stopped": "magenta",
}


def ago(timestamp: float | None, now: float | None = None) -> str:
    if not timestamp:
        return "-"
    seconds = max(0, int((now or time.time()) - timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def age(timestamp: float | None, now: float | None = None) -> str:
    return ago(timestamp, now).removesuffix(" ago")


def _state(state: str) -> Any:
    from rich.text import Text

    return Text(state, style=STATE_STYLES.get(state, ""))


def program_name(row: dict[str, Any]) -> str:
    """The program as the user named it, else relative to the working directory when it is under it."""
    if row.get("program_display"):
        return str(row["program_display"])
    program = Path(str(row["program"]))
    try:
        return str(program.relative_to(Path.cwd()))
    except ValueError:
        return str(program)


RUNS_COLUMNS = ("RUN", "STATE", "ATTEMPTS", "UPDATED", "PROGRAM")  # `playbooks runs`, as its plain output
TOP_COLUMNS = ("RUN", "STATE", "WORKER", "ATTEMPTS", "FAILOVERS", "AGE", "PROGRAM")


def runs_table(rows: list[dict[str, Any]], *, columns: tuple[str, ...] = RUNS_COLUMNS, title: str | None = None,
               now: float | None = None) -> Any:
    """Runs as a table: rows are runs.run_summary dicts."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column, justify="right" if column in ("ATTEMPTS", "FAILOVERS", "AGE", "UPDATED") else "left",
                         no_wrap=column != "PROGRAM", min_width=7 if column == "PROGRAM" else None)
    for row in rows:
        cells = {
            "RUN": row["run_id"],
            "STATE": _state(str(row["state"])),
            "WORKER": (row.get("worker") if str(row["state"]).startswith("running") else None) or "-",
            "ATTEMPTS": str(row["attempts"]),
            "FAILOVERS": str(row.get("failovers") or 0),
            "AGE": age(row.get("created_at"), now),
            "UPDATED": ago(row.get("updated_at"), now),
            "PROGRAM": program_name(row),
        }
        table.add_row(*(cells[c] for c in columns))
    return table


def workers_table(workers: list[dict[str, Any]], *, now: float | None = None) -> Any:
    """The `P:workers` heartbeats: host, pid, runs, draining, last seen."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Workers", title_justify="left", header_style="bold")
    for column in ("HOST", "PID", "RUNS", "DRAINING", "LAST SEEN"):
        table.add_column(column, justify="right" if column in ("PID", "RUNS") else "left", no_wrap=True)
    for worker in sorted(workers, key=lambda w: (not w.get("alive", True), w.get("host", ""), w.get("pid", 0))):
        style = "" if worker.get("alive", True) else "dim"
        table.add_row(Text(str(worker.get("host", "?")), style=style), str(worker.get("pid", "?")),
                      str(len(worker.get("runs", []))), "yes" if worker.get("draining") else "no",
                      Text(ago(worker.get("seen_at"), now) + ("" if worker.get("alive", True) else " (gone)"),
                           style=style))
    return table


def waits_for_text(spec: str | None) -> str:
    """What an agent waits for, from its unit's `waiting_for`: 'user', '*', or a WaitForMessage source."""
    if not spec:
        return "-"
    if spec == "user":
        return "user input"
    if spec == "*":
        return "any message"
    return f"message from {spec}"


def agent_view(summary: dict[str, Any], agent: dict[str, Any]) -> dict[str, Any]:
    """An agent of a cluster run as `status` shows it: state, worker, what it waits for, failovers.

    A spread run's agent has these of its own (runs.py puts them in its row, and `status --json` shows them).
    The agents of any other run share the run's state, its worker while it runs and its failovers; which of
    them waits, and for what, is not recorded.
    """
    if "state" in agent:
        return {"state": str(agent["state"]), "worker": agent.get("worker"), "waiting_for": agent.get("waiting_for"),
                "failovers": int(agent.get("failovers") or 0)}
    state = str(summary["state"])
    return {"state": state, "worker": summary.get("worker") if state == "running" else None, "waiting_for": None,
            "failovers": int(summary.get("failovers") or 0)}


AGENT_COLUMNS = ("AGENT", "CLASS", "CHECKPOINTS", "LAST CHECKPOINT")
CLUSTER_AGENT_COLUMNS = ("AGENT", "CLASS", "STATE", "WORKER", "WAITING FOR", "FAILOVERS", "CHECKPOINTS",
                         "LAST CHECKPOINT")


def agents_table(summary: dict[str, Any], *, cluster: bool) -> Any:
    """The agents of `status`; in cluster mode with where each runs and what it waits for."""
    from rich.table import Table

    columns = CLUSTER_AGENT_COLUMNS if cluster else AGENT_COLUMNS
    table = Table(title="Agents", title_justify="left", header_style="bold")
    for column in columns:
        if not cluster:
            table.add_column(column, no_wrap=column != "LAST CHECKPOINT")
            continue
        # Eight columns rarely fit in 80: ids fold rather than lose their ends, and no column shrinks to nothing.
        table.add_column("LAST" if column == "LAST CHECKPOINT" else column, overflow="fold",
                         min_width=6 if column in ("AGENT", "WAITING FOR", "LAST CHECKPOINT") else None)
    for agent in summary["agents"]:
        view = agent_view(summary, agent) if cluster else {}
        cells = {
            "AGENT": agent["agent_id"],
            "CLASS": agent["klass"],
            "STATE": _state(view.get("state", "")),
            "WORKER": view.get("worker") or "-",
            "WAITING FOR": waits_for_text(view.get("waiting_for")),
            "FAILOVERS": str(view.get("failovers", 0)),
            "CHECKPOINTS": str(agent.get("checkpoints", "")),
            "LAST CHECKPOINT": str(agent.get("last_checkpoint") or "-"),
        }
        if cluster:  # in the agent's row its id says nothing more: `ckpt_7`
            cells["LAST CHECKPOINT"] = cells["LAST CHECKPOINT"].removeprefix(f"{agent['agent_id']}_")
        table.add_row(*(cells[c] for c in columns))
    return table


def status_view(summary: dict[str, Any], *, cluster: bool = False) -> Any:
    """`playbooks status RUN_ID` on a terminal: the run, then its attempts and agents as tables."""
    from rich.console import Group
    from rich.table import Table

    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("Run", summary["run_id"])
    head.add_row("State", _state(str(summary["state"])))
    head.add_row("Program", str(summary["program"]))
    if summary.get("worker") and summary["state"] == "running":
        head.add_row("Worker", str(summary["worker"]))
    if summary.get("failovers") or summary.get("handoffs"):
        head.add_row("Moved", f"{summary['failovers']} failovers, {summary['handoffs']} handoffs")
    if summary.get("parent"):
        head.add_row("Forked", f"from {summary['parent']['checkpoint_id']} of run {summary['parent']['run_id']}")
    if summary.get("error"):
        head.add_row("Error", str(summary["error"]))
    if summary["state"] == "waiting":
        head.add_row("Waiting", f"for input from {summary.get('waiting_for') or 'user'}")
    parts: list[Any] = [head]
    if summary.get("attempt_log"):
        attempts = Table(title="Attempts", title_justify="left", header_style="bold")
        for column in ("#", "HOST", "PID", "STARTED", "OUTCOME"):
            attempts.add_column(column, no_wrap=True)
        for attempt in summary["attempt_log"]:
            attempts.add_row(str(attempt["number"]), str(attempt["host"]), str(attempt["pid"]),
                             ago(attempt["started_at"]), _state(attempt.get("outcome") or "-"))
        parts.append(attempts)
    if summary.get("agents"):
        parts.append(agents_table(summary, cluster=cluster))
    return Group(*parts)


def top_frame(snapshot: dict[str, Any], *, now: float | None = None) -> Any:
    """One frame of `playbooks top`: a header line, the runs, and (cluster mode) the workers."""
    from rich.console import Group
    from rich.text import Text

    now = now or time.time()
    runs = snapshot["runs"]
    counts: dict[str, int] = {}
    for run in runs:
        counts[str(run["state"])] = counts.get(str(run["state"]), 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no runs"
    where = snapshot.get("where", "")
    header = Text.assemble(("playbooks top", "bold"), f"  {snapshot['mode']} {where}  ·  {summary}  ·  ",
                           time.strftime("%H:%M:%S", time.localtime(now)))
    parts: list[Any] = [header, runs_table(runs, columns=TOP_COLUMNS, title="Runs", now=now)]
    if snapshot["mode"] == "cluster":
        parts.append(workers_table(snapshot.get("workers", []), now=now))
    return Group(*parts)


def print_rich(renderable: Any, *, width: int | None = None) -> None:
    from rich.console import Console

    Console(width=width).print(renderable)
