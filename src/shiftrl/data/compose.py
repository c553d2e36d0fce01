"""Composing training data from datasets: whole-episode subsets (e.g. DARA's "1T" = 10% of
the target data).

Subsets are drawn in whole episodes, so no episode is cut and `terminals` / `timeouts`
keep their meaning; the choice is a pure function of (dataset, fraction or count, seed).
"""

from __future__ import annotations

import numpy as np

from shiftrl.core.errors import ConfigError
from shiftrl.data.dataset import TransitionDataset


def subset_episodes(
    ds: TransitionDataset,
    fraction: float | None = None,
    count: int | None = None,
    seed: int = 0,
    *,
    transitions: int | None = None,
) -> TransitionDataset:
    """A seeded subset of whole episodes of `ds`.

    `fraction`: share of the *transitions* to keep (0 < fraction <= 1); episodes are taken in
    a seeded random order until at least `fraction * len(ds)` transitions are kept (always
    at least one episode). `count`: number of episodes to keep. Exactly one of the two.
    The kept episodes stay in their original order; the name gains a suffix such as
    `[10%]` or `[20ep]`, and the provenance records the subset.
    """
    if transitions is not None:  # ODRL's "5,000 target transitions": whole episodes up to that many
        if fraction is not None or count is not None:
            raise ConfigError("subset_episodes needs exactly one of fraction, count or transitions")
        if transitions <= 0:
            raise ConfigError(f"target transitions must be positive, got {transitions}")
        fraction = min(1.0, transitions / len(ds))
    if (fraction is None) == (count is None):
        raise ConfigError("subset_episodes needs exactly one of fraction or count")
    n_eps = ds.num_episodes
    if n_eps == 0:
        raise ConfigError(f"dataset '{ds.metadata.name}' has no episodes to subset")
    order = np.random.default_rng(seed).permutation(n_eps)
    if fraction is not None:
        if not 0.0 < fraction <= 1.0:
            raise ConfigError(f"target fraction must be in (0, 1], got {fraction}")
        if fraction == 1.0:
            return ds
        lengths = ds.episode_lengths()[order]
        need = fraction * len(ds)
        k = int(np.searchsorted(np.cumsum(lengths), need, side="left")) + 1
        suffix = f"[{fraction:.0%}]" if (100 * fraction).is_integer() else f"[{fraction:g}]"
    else:
        if count <= 0:
            raise ConfigError(f"target episode count must be positive, got {count}")
        if count > n_eps:
            raise ConfigError(
                f"asked for {count} episodes of '{ds.metadata.name}', which has only {n_eps}"
            )
        k = int(count)
        suffix = f"[{k}ep]"
    keep = np.sort(order[: min(k, n_eps)])
    out = ds.select_episodes(keep)
    out.metadata.name = f"{ds.metadata.name}{suffix}"
    out.metadata.provenance = {
        **ds.metadata.provenance,
        "subset": {
            "of": ds.metadata.name,
            "fraction": fraction,
            "count": count,
            "seed": seed,
            "episodes": int(len(keep)),
            "transitions": len(out),
        },
    }
    return out
