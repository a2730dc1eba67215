"""The Python API: `Playbooks([path])` loads a program and runs, resumes or forks it in this process."""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from playbooks_worker.config import Settings, load_settings
from playbooks_worker.errors import InputUnavailable, PlaybooksError
from playbooks_worker.program import load_program
from playbooks_worker.program.model import Program
from playbooks_worker.runner import LocalRunner, Reporter, RunOutcome


class CollectingIO:
    """A quiet reporter: output is collected in `.output`, input comes from a list."""

    def __init__(self, inputs: Iterable[str] = ()) -> None:
        self.inputs = collections.deque(inputs)
        self.output: list[str] = []
        self.notices: list[str] = []

    def deliver(self, event: dict[str, Any]) -> None:
        if event.get("type") == "say":
            self.output.append(event["message"])

    async def read_input(self, agent: Any) -> str:
        if not self.inputs:
            raise InputUnavailable("the run waits for input from user and none was given")
        return self.inputs.popleft()

    def on_resumed(self, agent: Any) -> None:
        pass

    def on_checkpoint(self, agent: Any, record: dict[str, Any], replayed: bool) -> None:
        pass

    def found_checkpoint(self, agent_id: str, record: dict[str, Any]) -> None:
        self.notices.append(f"found {record['checkpoint_id']}")

    def no_checkpoints(self, agent_id: str) -> None:
        self.notices.append(f"no checkpoints for {agent_id}")

    def notice(self, text: str) -> None:
        self.notices.append(text)


class Playbooks:
    """Load a program, then `await run()`, `await resume()` or `await fork(checkpoint_id)`.

        playbooks = Playbooks(["blah.pb"])
        await playbooks.initialize()
        outcome = await playbooks.resume()     # the newest unfinished run, or a fresh one
    """

    def __init__(
        self,
        paths: list[str | Path] | str | Path,
        *,
        settings: Settings | None = None,
        config_file: str | Path | None = None,
        reporter: Reporter | None = None,
        inputs: Iterable[str] = (),
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        if len(paths) != 1:
            raise PlaybooksError("give exactly one program file (use !import to combine files)")
        self.path = Path(paths[0])
        self.settings = settings or load_settings(config_file, overrides=overrides)
        self.reporter: Reporter = reporter or CollectingIO(inputs)
        self._program: Program | None = None
        self.runner = LocalRunner(self.settings, self.reporter)

    async def initialize(self) -> None:
        self._program = load_program(self.path)

    @property
    def program(self) -> Program:
        if self._program is None:
            self._program = load_program(self.path)
        return self._program

    async def run(self, args: Mapping[str, Any] | None = None) -> RunOutcome:
        return await self.runner.start(self.program, dict(args or {}))

    async def resume(self, run_id: str | None = None) -> RunOutcome:
        return await self.runner.resume(self.program, run_id)

    async def fork(self, checkpoint_id: str) -> RunOutcome:
        return await self.runner.fork(self.program, checkpoint_id)
