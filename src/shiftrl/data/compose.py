"""Composing training data from datasets: whole-episode target subsets for the
dynamics-shift protocols, e.g. DARA's "1T" (10% of the target data) or ODRL's 5,000
target transitions, beside full source datasets.

Subsets are drawn in whole episodes, so no episode is cut and `terminals` / `timeouts`
keep their meaning; the choice is a pure function of (dataset, fraction / count /
transitions, seed).
"""

from __future__ import annotations

from collections.abc import Sequence

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

    Exactly one of:
    - `fraction`: share of the *transitions* to keep (0 < fraction <= 1);
    - `transitions`: number of transitions to keep (ODRL's 5,000);
    - `count`: number of episodes to keep.
    For `fraction` and `transitions`, episodes are taken in a seeded random order until at
    least that many transitions are kept (always at least one episode; the last episode
    taken may overshoot, since episodes are never cut). The kept episodes stay in their
    original order; the name gains a suffix such as `[10%]`, `[5000tr]` or `[20ep]`, and
    the provenance records the subset.
    """
    given = sum(x is not None for x in (fraction, count, transitions))
    if given != 1:
        raise ConfigError("subset_episodes needs exactly one of fraction, count or transitions")
    n_eps = ds.num_episodes
    if n_eps == 0:
        raise ConfigError(f"dataset '{ds.metadata.name}' has no episodes to subset")
    order = np.random.default_rng(seed).permutation(n_eps)
    if fraction is not None or transitions is not None:
        if fraction is not None:
            if not 0.0 < fraction <= 1.0:
                raise ConfigError(f"target fraction must be in (0, 1], got {fraction}")
            if fraction == 1.0:
                return ds
            need = fraction * len(ds)
            suffix = f"[{fraction:.0%}]" if (100 * fraction).is_integer() else f"[{fraction:g}]"
        else:
            if transitions <= 0:
                raise ConfigError(f"target transition count must be positive, got {transitions}")
            if transitions > len(ds):
                raise ConfigError(
                    f"asked for {transitions} transitions of '{ds.metadata.name}', "
                    f"which has only {len(ds)}"
                )
            need = float(transitions)
            suffix = f"[{transitions}tr]"
        lengths = ds.episode_lengths()[order]
        k = int(np.searchsorted(np.cumsum(lengths), need, side="left")) + 1
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
            "transitions_asked": transitions,
            "seed": seed,
            "episodes": int(len(keep)),
            "transitions": len(out),
        },
    }
    return out


def compose(
    target_id: str | TransitionDataset,
    source_ids: Sequence[str | TransitionDataset] = (),
    target_fraction: float | None = None,
    target_count: int | None = None,
    seed: int = 0,
) -> tuple[TransitionDataset, list[TransitionDataset]]:
    """(target subset, sources) for a dynamics-shift protocol.

    Datasets are IDs (made on first use), paths, or `TransitionDataset`s. The target keeps
    whole episodes: `target_fraction` of its transitions (DARA's 1T = 0.1) or at least
    `target_count` transitions (ODRL: 5000), chosen with `seed`; neither keeps it whole.
    Sources are returned whole, and must have the target's observation and action sizes.
    """
    from shiftrl.data.io import load_dataset

    def load(d: str | TransitionDataset) -> TransitionDataset:
        return d if isinstance(d, TransitionDataset) else load_dataset(str(d))

    if target_fraction is not None and target_count is not None:
        raise ConfigError("give target_fraction or target_count, not both")
    target = load(target_id)
    if target_fraction is not None:
        target = subset_episodes(target, fraction=target_fraction, seed=seed)
    elif target_count is not None:
        target = subset_episodes(target, transitions=target_count, seed=seed)
    sources = [load(s) for s in source_ids]
    for s in sources:
        if (s.obs_dim, s.act_dim) != (target.obs_dim, target.act_dim):
            raise ConfigError(
                f"source '{s.metadata.name}' has obs dim {s.obs_dim} / act dim {s.act_dim}, "
                f"target '{target.metadata.name}' has {target.obs_dim} / {target.act_dim}"
            )
    return target, sources
