"""Aggregate metrics with stratified bootstrap confidence intervals, as rliable defines them
(Agarwal et al., "Deep RL at the Edge of the Statistical Precipice", NeurIPS 2021), in NumPy.

Scores are normalized scores x100 (random 0, expert 100), given per task as a list of
per-run scores (tasks may have different numbers of runs):
- IQM: the mean of the middle 50% of all runs pooled over tasks (scipy's
  `trim_mean(x, 0.25)`: drop `int(0.25 n)` scores at each end);
- mean: the mean over all runs pooled over tasks;
- optimality gap: mean of max(0, 100 - score), i.e. 100 - mean(min(score, 100));
- CIs: stratified bootstrap (runs resampled with replacement within each task), 95%
  percentile intervals, as `rliable.library.get_interval_estimates` does by default.

rliable itself is not a dependency: its 1.2.0 release needs arch 7.2.0 and pandas < 3,
which breaks with current pandas; `tests/test_bench_stats.py` checks these functions
against values computed by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Stat = Callable[[np.ndarray], np.ndarray]  # [reps, n] -> [reps]


def iqm(x: np.ndarray) -> np.ndarray:
    """Interquartile mean along the last axis (scipy.stats.trim_mean with 0.25)."""
    x = np.sort(np.asarray(x, np.float64), axis=-1)
    n = x.shape[-1]
    cut = int(0.25 * n)
    return x[..., cut : n - cut].mean(axis=-1)


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


def _pooled(scores_by_task: Sequence[Sequence[float]]) -> np.ndarray:
    return np.concatenate([np.asarray(s, np.float64) for s in scores_by_task])


def stratified_bootstrap(
    scores_by_task: Sequence[Sequence[float]],
    stats: dict[str, Stat] | None = None,
    reps: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    chunk: int = 2000,
) -> dict[str, Interval]:
    """Point estimates and percentile CIs of each statistic over a stratified bootstrap."""
    stats = stats or METRICS
    tasks = [np.asarray(s, np.float64) for s in scores_by_task if len(s)]
    if not tasks:
        nan = float("nan")
        return {k: Interval(nan, nan, nan) for k in stats}
    pooled = _pooled(tasks)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[np.ndarray]] = {k: [] for k in stats}
    done = 0
    while done < reps:
        m = min(chunk, reps - done)
        sample = np.concatenate(
            [t[rng.integers(0, len(t), size=(m, len(t)))] for t in tasks], axis=1
        )
        for k, f in stats.items():
            draws[k].append(f(sample))
        done += m
    alpha = 100.0 * (1.0 - confidence) / 2.0
    out = {}
    for k, f in stats.items():
        d = np.concatenate(draws[k])
        lo, hi = np.percentile(d, [alpha, 100.0 - alpha])
        out[k] = Interval(float(f(pooled[None, :])[0]), float(lo), float(hi))
    return out
