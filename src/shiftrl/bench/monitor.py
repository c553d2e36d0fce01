"""The live table of a sweep: every job's status, step and latest score."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from shiftrl.bench.runner import JobState

STYLE = {
    "pending": "dim",
    "running": "cyan",
    "done": "green",
    "skipped": "green dim",
    "failed": "red",
}
ORDER = {"running": 0, "failed": 1, "done": 2, "pending": 3, "skipped": 4}


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f}"


class Monitor:
    def __init__(
        self,
        states: list[JobState],
        title: str,
        enabled: bool = True,
        max_rows: int = 30,
        console: Console | None = None,
    ):
        self.states = {s.job.id: s for s in states}
        self.title, self.enabled, self.max_rows = title, enabled, max_rows
        self.console = console or Console(stderr=True)
        self.live: Live | None = None
        self.finished_order: list[str] = []
        self.note = ""

    # -- updates -------------------------------------------------------------------------
    def event(self, ev: Any) -> None:
        kind, job_id, payload = ev
        st = self.states.get(job_id)
        if st is None:
            return
        if kind == "start" and st.status == "pending":
            st.status, st.started = "running", time.time()
            st.resumed_from = int(payload.get("resumed_from", 0))
            st.step = st.resumed_from
        elif kind == "eval":
            st.step = int(payload["step"])
            st.score = payload.get("score")
            if st.score is not None:
                st.best = st.score if st.best is None else max(st.best, st.score)

    def result(self, st: JobState, res: dict[str, Any]) -> None:
        st.status = res.get("status", "failed")
        st.message = res.get("message", "")
        st.final, st.best = res.get("final"), res.get("best", st.best)
        st.resumed_from = int(res.get("resumed_from", st.resumed_from) or 0)
        st.seconds = float(res.get("seconds", 0.0) or 0.0)
        if st.status in ("done", "skipped"):
            st.step = st.job.total_steps
            st.score = st.final
        self.finished_order.append(st.job.id)

    def line(self, st: JobState) -> str:
        """A plain one-line record of a finished job (when the live table is off)."""
        if st.status == "failed":
            return f"[failed] {st.job.id}: {st.message}"
        resumed = f", resumed from step {st.resumed_from}" if st.resumed_from else ""
        return (
            f"[{st.status}] {st.job.id}: final {_fmt(st.final)}, best {_fmt(st.best)} "
            f"({st.seconds:.0f}s{resumed})"
        )

    # -- rendering -------------------------------------------------------------------------
    def render(self) -> Group:
        states = list(self.states.values())
        counts = {k: sum(s.status == k for s in states) for k in STYLE}
        head = Text(f"{self.title}: {len(states)} jobs  ")
        for k, style in STYLE.items():
            if counts[k]:
                head.append(f"{counts[k]} {k}  ", style=style)
        if self.note:
            head.append(self.note, style="yellow")
        recent = {jid: i for i, jid in enumerate(reversed(self.finished_order))}
        shown = sorted(
            states,
            key=lambda s: (ORDER[s.status], recent.get(s.job.id, 0), s.job.id),
        )
        table = Table(show_edge=False, pad_edge=False, box=None)
        for col, justify in (
            ("job", "left"),
            ("status", "left"),
            ("step", "right"),
            ("score", "right"),
            ("best", "right"),
            ("time", "right"),
        ):
            table.add_column(col, justify=justify)
        now = time.time()
        for s in shown[: self.max_rows]:
            elapsed = s.seconds or ((now - s.started) if s.started else 0.0)
            info = s.message if s.status == "failed" else ""
            table.add_row(
                s.job.id,
                Text(s.status + (f": {info[:60]}" if info else ""), style=STYLE[s.status]),
                f"{s.step:,}/{s.job.total_steps:,}",
                _fmt(s.score),
                _fmt(s.best),
                f"{elapsed:.0f}s" if elapsed else "",
            )
        parts: list[Any] = [head, table]
        if len(shown) > self.max_rows:
            parts.append(Text(f"... {len(shown) - self.max_rows} more", style="dim"))
        return Group(*parts)

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.render())

    def __enter__(self) -> Monitor:
        if self.enabled:
            self.live = Live(
                self.render(), console=self.console, refresh_per_second=2, transient=False
            )
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.update(self.render())
            self.live.__exit__(*exc)
            self.live = None
