"""Live progress of a sweep: cells finished/total, pruned and diverged so far, the current
cell, the best so far, ETA. A live bar on a terminal; one line per trial otherwise (CI, logs)."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ablations.grid import Task
from ablations.trial import TrialResult


class SweepDisplay:
    def __init__(self, console: Console, total: int, already_done: int, metric: str, maximize: bool) -> None:
        self.console = console
        self.metric = metric
        self.maximize = maximize
        self.outcomes: Counter[str] = Counter()
        self.best: tuple[float, str] | None = None
        self.done = already_done
        self.total = total
        self.live = console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]sweep"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            console=console,
            disable=not self.live,
        )
        self.bar = self.progress.add_task("", total=total, completed=already_done)

    def __enter__(self) -> SweepDisplay:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def _status(self, current: str) -> str:
        best = f"best {self.metric} {self.best[0]:.4f} ({self.best[1]})" if self.best else "best -"
        return f"pruned {self.outcomes['pruned']} · diverged {self.outcomes['diverged']} · {best} · {current}"

    def started(self, task: Task) -> None:
        self.progress.update(self.bar, description=self._status(f"now: {task.label}"))

    def finished(self, result: TrialResult) -> None:
        self.done += 1
        self.outcomes[result.outcome] += 1
        if result.outcome == "complete" and result.objective is not None:
            better = self.best is None or (result.objective > self.best[0]) == self.maximize
            if better:
                self.best = (result.objective, result.task.label)
        self.progress.update(self.bar, advance=1, description=self._status(""))
        if not self.live:
            value = "-" if result.objective is None else f"{result.objective:.4f}"
            detail = f"  ({result.error})" if result.error else ""
            self.console.print(
                f"[{self.done}/{self.total}] {result.outcome:<8} {result.task.label}  "
                f"{self.metric}={value} after {result.epochs_run} epoch(s){detail}",
                highlight=False,
                soft_wrap=True,
            )
