"""Progress of a dataset build: a rich bar on a terminal, plain lines elsewhere.

With stderr redirected (nohup, CI, cluster logs) a live bar draws nothing until the end, so
a build of minutes would be silent; there a line is printed every `PLAIN_EVERY_S` seconds
(transitions done, rate, time left), as SB3 and d3rlpy log when not on a terminal.
"""

from __future__ import annotations

import sys
import time
from typing import Any

PLAIN_EVERY_S = 30.0


class MakeProgress:
    """Progress of making one dataset (on stderr); a no-op when disabled."""

    def __init__(
        self, dataset_id: str, total: int, enabled: bool = True, unit: str = "transitions"
    ):
        self.enabled, self.dataset_id, self.total, self.unit = enabled, dataset_id, total, unit
        self._progress: Any = None
        self._task: Any = None
        self._plain = enabled and not sys.stderr.isatty()
        self._start = self._last = 0.0

    def __enter__(self) -> MakeProgress:
        if self._plain:
            self._start = self._last = time.monotonic()
        elif self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=20),  # leaves room for the counts at 80 columns
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(f"making {self.dataset_id}", total=self.total)
        return self

    def update(self, done: int) -> None:
        done = min(done, self.total)
        if self._progress is not None:
            self._progress.update(self._task, completed=done)
        elif self._plain:
            now = time.monotonic()
            if now - self._last >= PLAIN_EVERY_S:
                self._last = now
                self._line(done, now)

    def _line(self, done: int, now: float) -> None:
        elapsed = now - self._start
        rate = done / elapsed if elapsed > 0 else 0.0
        left = f", about {(self.total - done) / rate:.0f} s left" if rate > 0 else ""
        print(
            f"shiftrl: making {self.dataset_id}: {done:,}/{self.total:,} {self.unit} "
            f"({100 * done / self.total:.0f}%), {rate:,.0f}/s, {elapsed:.0f} s{left}",
            file=sys.stderr,
            flush=True,
        )

    def saving(self) -> None:
        if self._progress is not None:
            self._progress.update(
                self._task, completed=self.total, description=f"saving {self.dataset_id}"
            )
        elif self._plain:
            self._line(self.total, time.monotonic())

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
