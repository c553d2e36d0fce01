"""The compiled offline training loop.

One train step, in order:
    1. sample a batch on device: a fixed number of rows from each data source
       (target, source datasets), each row labelled with its domain (an add-on may draw
       it itself with the same layout: MAPLE's segments, `AddOn.sample_batch`);
    2. add-ons update their own networks on that batch;
    3. add-ons transform the batch (reward corrections, appended model transitions);
    4. the learner updates, calling add-on hooks inside its losses.
`make_train_chunk` fuses `length` such steps into one jit-compiled `lax.scan`; the
datasets are an argument (not closed over), so one compilation serves a whole run.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from shiftrl.addons.base import AddOn, AddOnContext
from shiftrl.core.jax_utils import strong_types
from shiftrl.core.types import Batch
from shiftrl.learners.base import Hooks, Learner, LearnerSpec

DeviceData = tuple[dict[str, jax.Array], ...]  # one dict of arrays per source


class TrainCarry(struct.PyTreeNode):
    learner: Any
    addons: dict[str, Any]
    rng: jax.Array
    step: jax.Array


@dataclass(frozen=True)
class SamplerSpec:
    """Static batch layout: rows drawn from each source and that source's domain label."""

    counts: tuple[int, ...]
    domains: tuple[int, ...]


MIXINGS = ("fraction", "union")


def batch_counts(
    batch_size: int, sizes: list[int], source_fraction: float, mixing: str = "fraction"
) -> tuple[int, ...]:
    """Rows per batch for [target, *sources]. 'fraction': the sources share
    `source_fraction` by their sizes; 'union': every dataset, the target included, gets its
    size share (uniform rows from the union), at least one row each."""
    if len(sizes) == 1:
        return (batch_size,)
    if mixing == "union":
        return _proportional(batch_size, np.asarray(sizes, float))
    n_source = round(batch_size * source_fraction)
    src = np.asarray(sizes[1:], float)
    per = np.floor(n_source * src / src.sum()).astype(int)
    per[: n_source - per.sum()] += 1  # hand out the rounding remainder
    return (batch_size - int(per.sum()), *map(int, per))


def _proportional(total: int, sizes: np.ndarray) -> tuple[int, ...]:
    """`total` rows split by `sizes` (largest remainders), every share at least 1."""
    exact = total * sizes / sizes.sum()
    per = np.maximum(np.floor(exact).astype(int), 1)
    order = np.argsort(-(exact - np.floor(exact)))
    i = 0
    while per.sum() < total:
        per[order[i % len(per)]] += 1
        i += 1
    while per.sum() > total:  # the floor of one lifted a share above its size
        per[int(np.argmax(per))] -= 1
    return tuple(int(x) for x in per)


def to_device(arrays: list[dict[str, np.ndarray]]) -> DeviceData:
    return tuple({k: jnp.asarray(v) for k, v in a.items()} for a in arrays)


def sample_batch(data: DeviceData, spec: SamplerSpec, rng: jax.Array) -> Batch:
    parts = []
    for i, (src, n, domain) in enumerate(zip(data, spec.counts, spec.domains, strict=True)):
        if n == 0:
            continue
        size = src["reward"].shape[0]
        idx = jax.random.randint(jax.random.fold_in(rng, i), (n,), 0, size)
        rows = jax.tree.map(lambda x, idx=idx: x[idx], src)
        parts.append(make_batch(rows, jnp.full((n,), domain, jnp.int32)))
    return Batch.concat(parts) if len(parts) > 1 else parts[0]


BATCH_FIELDS = ("obs", "action", "reward", "next_obs", "terminal")


def make_batch(rows: dict[str, jax.Array], domain: jax.Array) -> Batch:
    """A Batch from sampled rows; keys beyond the five fields are add-on annotations."""
    extras = {k: v for k, v in rows.items() if k not in BATCH_FIELDS}
    return Batch(**{k: rows[k] for k in BATCH_FIELDS}, domain=domain, extras=extras)


def init_carry(
    learner: Learner, addons: tuple[AddOn, ...], spec: LearnerSpec, seed: int
) -> TrainCarry:
    rng = jax.random.PRNGKey(seed)
    rng, k_learner, k_addons = jax.random.split(rng, 3)
    # jit the inits: one compilation instead of dozens of tiny eager ones per network
    addon_states = {
        ad.name: jax.jit(ad.init, static_argnums=1)(jax.random.fold_in(k_addons, i), spec)
        for i, ad in enumerate(addons)
    }
    carry = TrainCarry(
        jax.jit(learner.init)(k_learner), addon_states, rng, jnp.zeros((), jnp.int32)
    )
    return strong_types(carry)  # else the first chunk's output types differ: a second compile


def calibrate_carry(addons: tuple[AddOn, ...], carry: TrainCarry, pre: Any) -> TrainCarry:
    """The carry with each add-on's state calibrated to the run's preprocessing `pre`
    (raw-unit settings such as DARA's input noise; `AddOn.calibrate`)."""
    states = {ad.name: ad.calibrate(carry.addons[ad.name], pre) for ad in addons}
    return carry.replace(addons=states)


def make_train_step(learner: Learner, addons: tuple[AddOn, ...], sampler: SamplerSpec):
    def train_step(carry: TrainCarry, _: Any, data: DeviceData):
        rng, k_batch, k_addon, k_transform, k_learner = jax.random.split(carry.rng, 5)
        k_hooks = jax.random.fold_in(k_learner, 0x5EED)  # keeps the pre-hook-key streams intact
        batch = sample_batch(data, sampler, k_batch)

        ctx = AddOnContext(learner, carry.learner, data, sampler)
        addon_states, metrics = dict(carry.addons), {}
        k_draw = jax.random.fold_in(k_batch, 0xD4A3)  # leaves the existing key streams as they were
        for i, ad in enumerate(addons):  # an add-on may draw the batch itself (MAPLE's segments)
            batch = ad.sample_batch(
                addon_states[ad.name], batch, ctx, jax.random.fold_in(k_draw, i)
            )
        for i, ad in enumerate(addons):  # static tuple: unrolled at trace time
            if not ad.train_alongside:
                continue
            addon_states[ad.name], m = ad.update(
                addon_states[ad.name], batch, ctx, jax.random.fold_in(k_addon, i)
            )
            metrics.update({f"addon/{ad.name}/{k}": v for k, v in m.items()})
        for i, ad in enumerate(addons):
            batch = ad.transform_batch(
                addon_states[ad.name], batch, ctx, jax.random.fold_in(k_transform, i)
            )

        learner_state, m = learner.update(
            carry.learner, batch, k_learner, Hooks(addons, addon_states, k_hooks)
        )
        metrics.update(m)
        metrics["batch/reward"] = batch.reward.mean()
        carry = TrainCarry(learner_state, addon_states, rng, carry.step + 1)
        return carry, metrics

    return train_step


def all_finite(tree: Any) -> jax.Array:
    """True when every floating-point leaf of `tree` is finite (one fused reduction)."""
    flags = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.result_type(x), jnp.inexact)
    ]
    return jnp.all(jnp.stack(flags)) if flags else jnp.bool_(True)


def make_train_chunk(
    learner: Learner,
    addons: tuple[AddOn, ...],
    sampler: SamplerSpec,
    axes: Any = None,
    guard: bool = False,
):
    """A jitted `(carry, data, length) -> (carry, mean metrics over the chunk)`.

    `axes` (from `seed_axes`): the carry holds several seeds stacked on a leading axis and
    one compiled program advances them all on the same data (metrics get the seed axis).
    `guard`: also return the divergence guard's `health` (see `Health`): after every step
    the carry (parameters, optimizer and add-on states) and the losses are checked for
    inf / NaN, one reduction over the parameters per step. A NaN metric alone is no alarm:
    it marks a skipped sub-step (TD3's delayed actor); a NaN loss makes NaN parameters."""
    step = make_train_step(learner, addons, sampler)

    def guarded_step(carry: TrainCarry, x: Any, data: DeviceData):
        carry, metrics = step(carry, x, data)
        no_inf = [~jnp.isinf(v).any() for v in jax.tree.leaves(metrics)]
        ok = all_finite(carry) & jnp.all(jnp.stack(no_inf)) if no_inf else all_finite(carry)
        return carry, (metrics, ok)

    def chunk(carry: TrainCarry, data: DeviceData, length: int):
        if not guard:
            carry, metrics = jax.lax.scan(partial(step, data=data), carry, None, length=length)
            # NaN marks metrics of skipped sub-steps (e.g. TD3's delayed actor)
            return carry, jax.tree.map(lambda x: jnp.nanmean(x, axis=0), metrics)
        carry, (metrics, ok) = jax.lax.scan(
            partial(guarded_step, data=data), carry, None, length=length
        )
        first_bad = jnp.argmin(ok)  # index of the first non-finite step (0 when all are fine)
        health = {
            "finite": jnp.all(ok),
            "first_bad": first_bad,
            "at_bad": jax.tree.map(lambda x: x[first_bad], metrics),
            "before_bad": jax.tree.map(lambda x: x[jnp.maximum(first_bad - 1, 0)], metrics),
        }
        return carry, jax.tree.map(lambda x: jnp.nanmean(x, axis=0), metrics), health

    @partial(jax.jit, static_argnames="length", donate_argnums=0)
    def train_chunk(carry: TrainCarry, data: DeviceData, length: int):
        run = partial(chunk, length=length)
        return (run if axes is None else _vmap(run, axes, 3 if guard else 2))(carry, data)

    return train_chunk


def make_pretrain_chunk(
    learner: Learner, addons: tuple[AddOn, ...], sampler: SamplerSpec, axes: Any = None
):
    """Add-on-only updates before learning starts (e.g. DARA's classifiers trained beforehand).
    Each add-on trains for its own `pretrain_steps`; the learner is untouched. `axes` as in
    `make_train_chunk`."""

    def step(carry: TrainCarry, i: jax.Array, data: DeviceData):
        rng, k_batch, k_addon = jax.random.split(carry.rng, 3)
        batch = sample_batch(data, sampler, k_batch)
        ctx = AddOnContext(learner, carry.learner, data)
        states, metrics = dict(carry.addons), {}
        for j, ad in enumerate(addons):
            if ad.pretrain_steps == 0:
                continue
            new, m = ad.pretrain_update(states[ad.name], batch, ctx, jax.random.fold_in(k_addon, j))
            keep = i < ad.pretrain_steps
            states[ad.name] = jax.tree.map(
                lambda a, b, keep=keep: jnp.where(keep, a, b), new, states[ad.name]
            )
            metrics.update({f"addon/{ad.name}/{k}": v for k, v in m.items()})
        return carry.replace(addons=states, rng=rng), metrics

    def chunk(carry: TrainCarry, data: DeviceData, steps: jax.Array):
        carry, metrics = jax.lax.scan(partial(step, data=data), carry, steps)
        return carry, jax.tree.map(lambda x: x[-1], metrics)

    @partial(jax.jit, static_argnames="length")
    def pretrain(carry: TrainCarry, data: DeviceData, length: int, start=0):
        run = partial(chunk, steps=jnp.arange(length) + start)
        return (run if axes is None else _vmap(run, axes))(carry, data)

    return pretrain


# -- seeds vmapped --------------------------------------------------------------------------
SHARED_COUNTERS = ("step", "count")
"""Integer scalars every seed holds equal (learner, optimizer and add-on step counters)."""


def _vmap(run: Any, axes: Any, outputs: int = 2) -> Any:
    """`run(carry, data)` over stacked seeds: carry leaves on `axes`, data shared; the
    other outputs (metrics, guard health) get a leading seed axis."""
    return jax.vmap(run, in_axes=(axes, None), out_axes=(axes, *([0] * (outputs - 1))))


def seed_axes(carry: TrainCarry, share_counters: bool = True) -> Any:
    """vmap axes for a stack of seeds' carries: 0 (one entry per seed) for every leaf but,
    with `share_counters`, the integer step / count scalars, which stay unstacked. A
    `lax.cond` on a shared step (TD3's delayed actor, BRAC-p's phases) then stays a branch;
    on a stacked step vmap turns it into a select that computes both branches."""

    def axis(path: tuple, leaf: Any) -> int | None:
        name = getattr(path[-1], "name", getattr(path[-1], "key", None)) if path else None
        counter = jnp.ndim(leaf) == 0 and jnp.issubdtype(jnp.result_type(leaf), jnp.integer)
        return None if share_counters and counter and name in SHARED_COUNTERS else 0

    return jax.tree_util.tree_map_with_path(axis, carry)


def choose_seed_axes(learner, addons, sampler, carries: list[TrainCarry], data) -> Any:
    """`seed_axes` with shared counters when the learner and add-ons keep them equal across
    seeds (one traced step of each chunk shows it: vmap refuses an unstacked output that
    came to depend on a seed), else one entry per seed for every leaf."""
    axes = seed_axes(carries[0])
    stacked = stack_carries(carries, axes)
    chunks = [make_train_chunk(learner, addons, sampler, axes)]
    if any(ad.pretrain_steps for ad in addons):
        chunks.append(make_pretrain_chunk(learner, addons, sampler, axes))
    try:
        for chunk in chunks:
            jax.eval_shape(lambda c, d, chunk=chunk: chunk(c, d, 1), stacked, data)
    except ValueError:
        return seed_axes(carries[0], share_counters=False)
    return axes


def _flat_axes(axes: Any, carry: Any) -> list[int | None]:
    if axes is None:
        return [0] * len(jax.tree.leaves(carry))
    return jax.tree.leaves(axes, is_leaf=lambda x: x is None)


def stack_carries(carries: list[TrainCarry], axes: Any = None) -> TrainCarry:
    """Seeds' carries stacked on a leading axis (leaves `axes` marks None: kept once, as all
    seeds hold them equal). Structure from the first: each init builds its own optimizer,
    whose functions differ only in identity."""
    leaves = [jax.tree.leaves(c) for c in carries]
    out = []
    for ax, xs in zip(_flat_axes(axes, carries[0]), zip(*leaves, strict=True), strict=True):
        if ax is None and any(int(x) != int(xs[0]) for x in xs):
            raise ValueError(f"seeds' shared counters differ: {[int(x) for x in xs]}")
        out.append(xs[0] if ax is None else jnp.stack(xs))
    return jax.tree.unflatten(jax.tree.structure(carries[0]), out)


def unstack_carry(carry: TrainCarry, i: int, axes: Any = None) -> TrainCarry:
    """Seed i's carry out of a stacked one."""
    flat = _flat_axes(axes, carry)
    leaves = [x if ax is None else x[i] for ax, x in zip(flat, jax.tree.leaves(carry), strict=True)]
    return jax.tree.unflatten(jax.tree.structure(carry), leaves)


def chunk_length(steps: int, eval_every: int, log_every: int) -> int:
    """Largest divisor of gcd(steps, eval_every) not above log_every, so every chunk has
    the same length (one compilation) and evaluations fall on chunk boundaries."""
    g = int(np.gcd(steps, eval_every))
    best = 1
    for d in range(1, int(np.sqrt(g)) + 1):
        if g % d == 0:
            for cand in (d, g // d):
                if cand <= log_every:
                    best = max(best, cand)
    return best
