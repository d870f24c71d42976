"""Progress of long operations. The engine reports to a :class:`Reporter`; the CLI gives it a
rich progress display on stderr (so ``--json`` on stdout stays clean), tests a silent one."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)


class Reporter:
    """Silent reporter: the interface every reporter has."""

    def start(self, task: str, total: int) -> None: ...

    def advance(self, task: str, n: int = 1, note: str = "") -> None: ...

    def finish(self, task: str) -> None: ...

    def log(self, message: str) -> None: ...

    def close(self) -> None: ...

    def callback(self, task: str, done: int, total: int) -> None:
        """A (task, done, total) function for strategies: starts the task on first call."""
        self.start(task, total) if done == 0 else self.advance(task)
        if done >= total:
            self.finish(task)


class RichReporter(Reporter):
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
                                 TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=self.console, transient=False)
        self.tasks: dict[str, TaskID] = {}
        self.progress.start()

    def start(self, task: str, total: int) -> None:
        if task in self.tasks:
            self.progress.reset(self.tasks[task], total=total)
        else:
            self.tasks[task] = self.progress.add_task(task, total=total, note="")

    def advance(self, task: str, n: int = 1, note: str = "") -> None:
        if task not in self.tasks:
            self.start(task, 0)
        fields: dict[str, Any] = {"note": note} if note else {}
        self.progress.update(self.tasks[task], advance=n, **fields)

    def finish(self, task: str) -> None:
        if task in self.tasks:
            t = self.progress.tasks[self.tasks[task]]
            self.progress.update(self.tasks[task], completed=t.total)

    def log(self, message: str) -> None:
        self.progress.console.print(message)

    def close(self) -> None:
        self.progress.stop()
