"""A rich progress bar for training that shows the latest evaluation."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainProgress:
    def __init__(self, total: int, start: int = 0, enabled: bool = True, title: str = "train"):
        self.enabled = enabled
        self._progress = (
            Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                transient=False,
            )
            if enabled
            else None
        )
        self._total, self._start, self._title = total, start, title
        self._task = None

    def __enter__(self) -> TrainProgress:
        if self._progress is not None:
            self._progress.__enter__()
            self._task = self._progress.add_task(
                self._title, total=self._total, completed=self._start, info=""
            )
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def advance(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def report(self, row: dict) -> None:
        if self._progress is None:
            return
        score = row.get("normalized_score")
        ret = row.get("return")
        info = (
            f"score {score:.1f}"
            if score is not None
            else (f"return {ret:.1f}" if ret is not None else "")
        )
        self._progress.update(self._task, info=info)
