"""Progress that reads on a terminal and in a redirected log alike.

A rich bar draws nothing when stdout is a file or a pipe (a job's log, `nohup`, CI), so there
the same progress is printed as plain lines, one per tenth of the way:
`fine-tuning: step 120/400 (30%)`.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import Progress

PLAIN_STEPS = 10  # plain lines per run: one each 10%


class StepProgress:
    """Count `total` steps of one task: a rich bar on a terminal, plain log lines elsewhere.

    `unit` names a step in the plain lines ("step" gives "step 120/400"; "" gives "120/400").
    `disable` shows nothing at all (e.g. on every process but the first of a distributed run).
    """

    def __init__(
        self,
        description: str,
        total: int,
        unit: str = "",
        transient: bool = False,
        disable: bool = False,
        console: Console | None = None,
    ) -> None:
        self.description = description
        self.total = max(int(total), 0)
        self.unit = unit
        self.disable = disable
        self.console = console or Console()
        self.plain = not self.console.is_terminal
        self.completed = 0
        self._last_tenth = 0
        self._bar = Progress(console=self.console, transient=transient, disable=disable)
        self._task = self._bar.add_task(description, total=self.total or None)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if not self.plain:
            self._bar.start()

    def stop(self) -> None:
        if not self.plain:
            self._bar.stop()

    def update(self, completed: int) -> None:
        self.completed = completed
        if not self.plain:
            self._bar.update(self._task, completed=completed)
            return
        if self.disable or not self.total:
            return
        tenth = min(PLAIN_STEPS, completed * PLAIN_STEPS // self.total)
        if tenth > self._last_tenth:
            self._last_tenth = tenth
            self.log(self.line())

    def advance(self, steps: int = 1) -> None:
        self.update(self.completed + steps)

    def line(self) -> str:
        count = f"{self.unit} " if self.unit else ""
        share = self.completed / self.total if self.total else 1.0
        return f"{self.description.lower()}: {count}{self.completed}/{self.total} ({share:.0%})"

    def log(self, message: str) -> None:
        """A line beside the bar (above it on a terminal), or plainly into the log."""
        if self.disable:
            return
        if self.plain:
            print(message, flush=True)
        else:
            self._bar.console.print(message)
