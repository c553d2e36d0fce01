"""Aggregate metrics with stratified bootstrap confidence intervals, as rliable defines them
(Agarwal et al., "Deep RL at the Edge of the Statistical Precipice", NeurIPS 2021), on
scipy (`scipy.stats.bootstrap`, `scipy.stats.trim_mean`).

Scores are normalized scores x100 (random 0, expert 100), given per task as a list of
per-run scores (tasks may have different numbers of runs):
- IQM: the mean of the middle 50% of all runs pooled over tasks (`trim_mean(x, 0.25)`:
  drop `int(0.25 n)` scores at each end);
- mean: the mean over all runs pooled over tasks;
- optimality gap: mean of max(0, 100 - score), i.e. 100 - mean(min(score, 100));
- CIs: stratified bootstrap (runs resampled with replacement within each task: scipy
  resamples each of several samples independently), 95% percentile intervals, as
  `rliable.library.get_interval_estimates` does by default.

rliable itself is not a dependency: its 1.2.0 release needs arch 7.2.0 and pandas < 3,
which breaks with current pandas; `tests/test_bench.py` checks these functions against
values computed by hand and against rliable's own output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

Stat = Callable[[np.ndarray], np.ndarray]  # [..., n] -> [...]


def iqm(x: np.ndarray) -> np.ndarray:
    """Interquartile mean along the last axis."""
    return sps.trim_mean(np.asarray(x, np.float64), 0.25, axis=-1)


def mean(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float64).mean(axis=-1)


def optimality_gap(x: np.ndarray, threshold: float = 100.0) -> np.ndarray:
    return threshold - np.minimum(np.asarray(x, np.float64), threshold).mean(axis=-1)


METRICS: dict[str, Stat] = {"IQM": iqm, "mean": mean, "optimality gap": optimality_gap}


@dataclass(frozen=True)
class Interval:
    point: float
    low: float
    high: float

    def fmt(self, digits: int = 1) -> str:
        return f"{self.point:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def stratified_bootstrap(
    scores_by_task: Sequence[Sequence[float]],
    stats: dict[str, Stat] | None = None,
    reps: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    chunk: int = 2000,
) -> dict[str, Interval]:
    """Point estimates and percentile CIs of each statistic over a stratified bootstrap.
    A task with one run has nothing to resample: it enters every replicate as it is."""
    stats = stats or METRICS
    tasks = [np.asarray(s, np.float64) for s in scores_by_task if len(s)]
    if not tasks:
        nan = float("nan")
        return {k: Interval(nan, nan, nan) for k in stats}
    pooled = np.concatenate(tasks)
    varying = [t for t in tasks if len(t) > 1]
    fixed = np.concatenate([t for t in tasks if len(t) == 1] or [np.zeros(0)])
    out = {}
    for k, f in stats.items():
        point = float(f(pooled))
        if not varying:
            out[k] = Interval(point, point, point)
            continue

        def statistic(*samples: np.ndarray, axis: int = -1, f: Stat = f) -> np.ndarray:
            batch = np.broadcast_shapes(*(x.shape[:-1] for x in samples))
            parts = [np.broadcast_to(x, (*batch, x.shape[-1])) for x in samples]
            parts.append(np.broadcast_to(fixed, (*batch, fixed.size)))
            return f(np.concatenate(parts, axis=-1))

        res = sps.bootstrap(
            tuple(varying),
            statistic,
            n_resamples=reps,
            batch=chunk,
            confidence_level=confidence,
            method="percentile",
            vectorized=True,
            rng=np.random.default_rng(seed),
        )
        ci = res.confidence_interval
        out[k] = Interval(point, float(ci.low), float(ci.high))
    return out
