"""Progress of long work (dataset builds, training, add-on pretraining, online fine-tuning).

On a terminal, a live rich bar on stderr. With stderr redirected (nohup, CI, cluster logs) a
live bar draws nothing until the end, so a run of hours would be silent; there a plain line
is printed every `PLAIN_EVERY_S` seconds instead (done / total, rate, the latest score, time
left), as SB3 and d3rlpy log when not on a terminal.

`progress` arguments take: True ("auto": a bar on a terminal, plain lines elsewhere),
"plain" (plain lines wherever: the CLI's `--no-progress`, like d3rlpy's
`show_progress=False`, which drops the bar but keeps the log lines), False (nothing: the
Python API's silent mode, used by the benchmark workers and the tests).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Literal

PLAIN_EVERY_S = 30.0
Mode = Literal["bar", "plain", "off"]
ProgressArg = bool | str


def progress_mode(progress: ProgressArg) -> Mode:
    """The display a `progress` argument asks for, where stderr is now."""
    if progress is False or progress == "off":
        return "off"
    if progress == "plain":
        return "plain"
    if progress is True or progress == "auto":
        return "bar" if sys.stderr.isatty() else "plain"
    raise ValueError(f"progress must be True, False or 'plain', got {progress!r}")


class Progress:
    """One long task's progress: `advance(n)` / `update(done)` as work completes (never as
    it is dispatched), `note(text)` for the latest result (a score, a loss). `total` None:
    open-ended work (training until early stopping), shown without a fraction or ETA."""

    def __init__(
        self,
        title: str,
        total: int | None,
        *,
        start: int = 0,
        unit: str = "steps",
        rate_unit: str = "/s",
        progress: ProgressArg = True,
        bar_width: int | None = 20,  # leaves room for the counts at 80 columns
    ):
        self.title, self.total, self.unit, self.rate_unit = title, total, unit, rate_unit
        self.mode = progress_mode(progress)
        self.done = self._start = start
        self._bar_width = bar_width
        self._note = ""
        self._bar: Any = None
        self._task: Any = None
        self._t0 = self._last = 0.0

    def __enter__(self) -> Progress:
        self._t0 = self._last = time.monotonic()
        if self.mode == "bar":
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=self._bar_width),
                MofNCompleteColumn(),
                TextColumn("{task.fields[note]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(
                self.title, total=self.total, completed=self.done, note=self._note
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
        elif self.mode == "plain" and exc[0] is None:
            self._line()

    def advance(self, n: int) -> None:
        self.update(self.done + n)

    def update(self, done: int) -> None:
        self.done = done if self.total is None else min(done, self.total)
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
        elif self.mode == "plain" and time.monotonic() - self._last >= PLAIN_EVERY_S:
            self._line()

    def note(self, text: str) -> None:
        """The latest result, shown beside the bar and in the next plain line."""
        self._note = text
        if self._bar is not None:
            self._bar.update(self._task, note=text)

    def describe(self, title: str) -> None:
        self.title = title
        if self._bar is not None:
            self._bar.update(self._task, description=title)
        elif self.mode == "plain":
            self._line()

    def _line(self) -> None:
        now = time.monotonic()
        self._last = now
        elapsed = now - self._t0
        rate = (self.done - self._start) / elapsed if elapsed > 0 else 0.0
        if self.total is None:
            parts = [f"{self.done:,} {self.unit}"]
        else:
            share = 100 * self.done / max(self.total, 1)
            parts = [f"{self.done:,}/{self.total:,} {self.unit} ({share:.0f}%)"]
        if rate > 0:
            parts.append(f"{rate:,.1f} {self.rate_unit}")
        if self._note:
            parts.append(self._note)
        parts.append(f"{_duration(elapsed)} elapsed")
        if rate > 0 and self.total is not None and self.done < self.total:
            parts.append(f"ETA {_duration((self.total - self.done) / rate)}")
        self._print(", ".join(parts))

    def _print(self, text: str) -> None:
        print(f"shiftrl: {self.title}: {text}", file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min"


PROGRESS_HELP = (
    "a live bar on a terminal; --no-progress: a plain progress line every 30 s instead "
    "(as when output is redirected)"
)


def from_flag(progress: bool) -> ProgressArg:
    """The CLI's --progress/--no-progress: a bar where possible, or plain lines."""
    return True if progress else "plain"
