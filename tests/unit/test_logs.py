"""Log records: tagged with their run, agent and checkpoint; JSON lines; never a URL password."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from playbooks_worker import logs
from playbooks_worker.runtime.callpath import current_agent


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logs.install(logging.StreamHandler(stream))
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)
    logs.bind_run(None)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_record_is_one_json_line_with_the_context_it_was_logged_in(captured) -> None:
    logger, stream = captured

    class Agent:
        id = "greeter_1_r1"

    async def attempt() -> None:
        logs.bind_run("r1")
        current_agent.set(Agent())
        logs.wrote_checkpoint("greeter_1_r1_ckpt_3")
        logger.warning("tool %s is slow", "Lookup")

    asyncio.run(attempt())
    logger.info("between runs")

    tagged, plain = lines(stream)
    assert tagged["message"] == "tool Lookup is slow" and tagged["level"] == "WARNING"
    assert tagged["logger"] == "test.logs" and tagged["time"].endswith("+00:00")
    assert (tagged["run_id"], tagged["agent_id"], tagged["checkpoint_id"]) == (
        "r1", "greeter_1_r1", "greeter_1_r1_ckpt_3")
    assert "run_id" not in plain and "agent_id" not in plain  # the attempt's task context ended with it


def test_extra_fields_win_over_the_context(captured) -> None:
    logger, stream = captured
    logs.bind_run("r1")
    logger.warning("reaped", extra={"run_id": "r2"})
    assert lines(stream)[0]["run_id"] == "r2"


def test_checkpoint_writes_are_logged_at_debug_only(captured) -> None:
    logger, stream = captured
    checkpoints = logging.getLogger("playbooks_worker.checkpoints")
    handler = logger.handlers[0]
    checkpoints.addHandler(handler)
    try:
        checkpoints.setLevel(logging.INFO)
        logs.wrote_checkpoint("a_1_r1_ckpt_1")
        assert stream.getvalue() == ""
        checkpoints.setLevel(logging.DEBUG)
        logs.wrote_checkpoint("a_1_r1_ckpt_2")
    finally:
        checkpoints.removeHandler(handler)
        checkpoints.setLevel(logging.NOTSET)
    (line,) = lines(stream)
    assert line["message"] == "checkpoint a_1_r1_ckpt_2 written" and line["checkpoint_id"] == "a_1_r1_ckpt_2"


@pytest.mark.parametrize(("text", "shown"), [
    ("connecting to redis://:s3cret@127.0.0.1:6379/0 now", "connecting to redis://:***@127.0.0.1:6379/0 now"),
    ("amqp://guest:p@ss@rabbit:5672//", "amqp://guest:***@rabbit:5672//"),
    ("redis://127.0.0.1:6379/0?password=s3cret&db=1", "redis://127.0.0.1:6379/0?password=***&db=1"),
    ("no secret here: redis://127.0.0.1:6379/0", "no secret here: redis://127.0.0.1:6379/0"),
])
def test_redact_masks_url_passwords_anywhere(text: str, shown: str) -> None:
    assert logs.redact(text) == shown


def test_no_password_reaches_the_output_from_arguments_or_tracebacks(captured) -> None:
    logger, stream = captured
    try:
        raise ConnectionError("cannot reach redis://:hunter2@db:6379/0")
    except ConnectionError:
        logger.exception("broker %s is down", "redis://:hunter2@db:6379/0")
    assert "hunter2" not in stream.getvalue()
    (line,) = lines(stream)
    assert line["message"] == "broker redis://:***@db:6379/0 is down"
    assert "ConnectionError: cannot reach redis://:***@db:6379/0" in line["exception"]


def test_configure_routes_the_root_logger_once(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        logs.configure("json", "INFO", stream=stream)
        logs.configure("json", "WARNING", stream=stream)  # again (a prefork child): replaces, never doubles
        logging.getLogger("celery.app.trace").warning("Task x succeeded")
        logging.getLogger("celery.app.trace").info("not shown at WARNING")
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)
    (line,) = lines(stream)
    assert line["logger"] == "celery.app.trace" and line["message"] == "Task x succeeded"
