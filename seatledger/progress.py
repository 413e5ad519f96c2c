"""Progress bars on stderr (rich), so that stdout carries only the command's output."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn


def progress_bar(enabled: bool, transient: bool = False) -> Progress:
    """A bar with a count and the time left; draws nothing when disabled."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), disable=not enabled, transient=transient,
    )  # fmt: skip


class StepBar:
    """One bar per step, fed by the `progress(step, done, total)` callbacks of replay.dispute and
    replay.verify; the bars vanish when done."""

    def __init__(self, enabled: bool):
        self.progress = progress_bar(enabled, transient=True)
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, step: str, done: int, total: int | None) -> None:
        if step not in self.tasks:
            self.tasks[step] = self.progress.add_task(step, total=total)
        self.progress.update(self.tasks[step], completed=done, total=total)

    def __enter__(self) -> StepBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)
