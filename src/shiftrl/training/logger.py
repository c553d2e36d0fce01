"""Run logs: metrics.jsonl (one row per evaluation) and a CSV copy always; TensorBoard
and Weights & Biases when asked for and installed.

The CSV is appended to, one row per evaluation; only a row bringing a column the header
lacks (a divergence record, a metric that starts later) rewrites the file, once, with the
union of the columns. The standard `csv` module writes it: pandas is no dependency of the
library and adds nothing for a file of one row per evaluation."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from shiftrl.core.errors import ShiftRLError


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class MetricWindow:
    """Step-weighted means of training metrics over a window of compiled chunks (since the
    last evaluation, or the last loss log): chunks differ in length, so each chunk's means
    count by its steps. NaN (a skipped sub-step) is left out; a metric that never ran in the
    window (RL losses during a BC phase) has mean None. Saved with an interrupt's checkpoint
    (`to_json`), so the resumed run's next row averages the same steps."""

    def __init__(self, sums: dict[str, float] | None = None, steps: dict[str, int] | None = None):
        self.sums: dict[str, float] = dict(sums or {})
        self.steps: dict[str, int] = dict(steps or {})

    def add(self, metrics: dict[str, Any], steps: int) -> None:
        for k, v in metrics.items():
            v = float(v)
            self.sums.setdefault(k, 0.0)
            self.steps.setdefault(k, 0)
            if not math.isnan(v):
                self.sums[k] += v * steps
                self.steps[k] += steps

    def __bool__(self) -> bool:
        return bool(self.sums)

    def means(self) -> dict[str, float | None]:
        return {k: (s / self.steps[k] if self.steps[k] else None) for k, s in self.sums.items()}

    def to_json(self) -> dict:
        return {"sums": self.sums, "steps": self.steps}

    @classmethod
    def from_json(cls, d: dict | None) -> MetricWindow:
        d = d or {}
        return cls(d.get("sums"), d.get("steps"))


def _flat(row: dict) -> dict:
    """The CSV's part of a row: scalars (per-episode return lists stay in the JSONL)."""
    return {k: v for k, v in row.items() if not isinstance(v, list | dict)}


def read_rows(path: Path) -> list[dict]:
    """The rows of a metrics.jsonl. A last line without its newline that does not parse is
    what a kill during an append leaves: it is dropped. Damage anywhere else is one line."""
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text(errors="replace")
    lines = text.split("\n")
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # torn last line (no newline after it)
                break
            raise ShiftRLError(
                f"{path}: line {i + 1} is not a JSON row (the file is damaged)"
            ) from None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            raise ShiftRLError(f"{path}: line {i + 1} is not a metrics row (the file is damaged)")
        rows.append(row)
    return rows


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class RunLogger:
    def __init__(
        self,
        run_dir: Path,
        tensorboard: bool = False,
        wandb_project: str | None = None,
        config: dict | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.jsonl = self.run_dir / "metrics.jsonl"
        self.csv = self.run_dir / "metrics.csv"
        self._tb = None
        self._wandb = None
        self._csv_keys: list[str] | None = None
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                print("tensorboard logging needs `pip install shiftrl[tensorboard]`; skipping it")
            else:
                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
        if wandb_project:
            try:
                import wandb
            except ImportError:
                print("W&B logging needs `pip install shiftrl[wandb]`; skipping it")
            else:
                self._wandb = wandb.init(
                    project=wandb_project, config=config, dir=str(self.run_dir)
                )

    def rows(self) -> list[dict]:
        return read_rows(self.jsonl)

    def truncate_after(self, step: int) -> None:
        """On resume: forget rows logged after the checkpoint we restart from (and a torn
        last line a kill left), rewriting the file atomically."""
        kept = [r for r in self.rows() if r["step"] <= step]
        _write_atomic(self.jsonl, "".join(json.dumps(r) + "\n" for r in kept))
        self._write_csv(kept)

    def log(self, row: dict[str, Any], sink_keys: Any = None) -> None:
        """Append one row (metrics.jsonl, metrics.csv); its scalars also go to TensorBoard /
        W&B, only those named in `sink_keys` when given (the training losses reach them
        every `log_every` steps through `log_scalars` instead)."""
        row = {k: _clean(v) for k, v in row.items()}
        # one write of one whole line; a kill can at worst leave a torn last line, which
        # `read_rows` drops
        fd = os.open(self.jsonl, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(row) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self._append_csv(row)
        scalars = {k: v for k, v in row.items() if isinstance(v, int | float) and k != "step"}
        if sink_keys is not None:
            scalars = {k: v for k, v in scalars.items() if k in sink_keys}
        self.log_scalars(row["step"], scalars)

    def log_scalars(self, step: int, scalars: dict[str, Any]) -> None:
        """Scalars to TensorBoard / W&B only (training losses between evaluations)."""
        scalars = {
            k: v for k, v in scalars.items() if isinstance(v, int | float) and math.isfinite(v)
        }
        if not scalars:
            return
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, v, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    def _write_csv(self, rows: list[dict]) -> None:
        flat = [_flat(r) for r in rows]
        keys = list(dict.fromkeys(k for r in flat for k in r))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys)
        w.writeheader()
        w.writerows(flat)
        _write_atomic(self.csv, buf.getvalue())
        self._csv_keys = keys

    def _csv_header(self) -> list[str] | None:
        if self._csv_keys is None and self.csv.exists():
            with self.csv.open(newline="") as f:
                self._csv_keys = next(csv.reader(f), None)
        return self._csv_keys

    def _append_csv(self, row: dict) -> None:
        flat = _flat(row)
        header = self._csv_header()
        if not header or not set(flat) <= set(header):  # a new column: rewrite once
            self._write_csv(self.rows())
            return
        buf = io.StringIO()
        csv.DictWriter(buf, fieldnames=header).writerow(flat)
        with self.csv.open("a", newline="") as f:
            f.write(buf.getvalue())

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
