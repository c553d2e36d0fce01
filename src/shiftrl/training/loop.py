"""The compiled offline training loop.

One train step, in order:
    1. sample a batch on device: a fixed number of rows from each data source
       (target, source datasets), each row labelled with its domain (an add-on may draw
       it itself with the same layout: MAPLE's segments, `AddOn.sample_batch`);
    2. add-ons update their own networks on that batch;
    3. add-ons transform the batch (reward corrections, appended model transitions);
    4. the learner updates, calling add-on hooks inside its losses.
`make_train_chunk` fuses `length` such steps into one jit-compiled loop (`length` traced,
so one compilation serves chunks of any length); the datasets are an argument (not closed
over), so one compilation serves a whole run.
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
    learner_state = jax.jit(learner.init)(k_learner)
    carry = TrainCarry(learner_state, addon_states, rng, jnp.zeros((), jnp.int32))
    return strong_types(carry)


def calibrate_carry(addons: tuple[AddOn, ...], carry: TrainCarry, pre: Any) -> TrainCarry:
    """The carry with each add-on's state calibrated to the run's preprocessing `pre`
    (raw-unit settings such as DARA's input noise; `AddOn.calibrate`)."""
    states = {ad.name: ad.calibrate(carry.addons[ad.name], pre) for ad in addons}
    return strong_types(carry.replace(addons=states))


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


def _zeros_like_shapes(shapes: Any) -> Any:
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def nan_mean_init(metrics: Any) -> tuple[Any, Any]:
    """Running (sum, count) of each metric over non-NaN steps: NaN marks a skipped
    sub-step (TD3's delayed actor), so a chunk's mean is a nanmean over its steps."""
    sums = jax.tree.map(lambda x: jnp.zeros(jnp.shape(x), jnp.float32), metrics)
    counts = jax.tree.map(lambda x: jnp.zeros(jnp.shape(x), jnp.int32), metrics)
    return sums, counts


def nan_mean_add(sums: Any, counts: Any, metrics: Any) -> tuple[Any, Any]:
    valid = jax.tree.map(lambda x: ~jnp.isnan(x), metrics)
    sums = jax.tree.map(
        lambda s, x, v: s + jnp.where(v, x, 0).astype(jnp.float32), sums, metrics, valid
    )
    counts = jax.tree.map(lambda c, v: c + v.astype(jnp.int32), counts, valid)
    return sums, counts


def nan_mean_result(sums: Any, counts: Any) -> Any:
    return jax.tree.map(lambda s, c: jnp.where(c > 0, s / jnp.maximum(c, 1), jnp.nan), sums, counts)


def make_train_chunk(
    learner: Learner,
    addons: tuple[AddOn, ...],
    sampler: SamplerSpec,
    axes: Any = None,
    guard: bool = False,
):
    """A jitted `(carry, data, length) -> (carry, mean metrics over the chunk)`.

    `length` is a traced argument (a `fori_loop` bound, not a `scan` length): one
    compilation runs chunks of any length, so the host picks each chunk's length from the
    measured step time (`ChunkPacer`) and from where the next evaluation falls, and the
    result after N steps does not depend on how they were split into chunks.
    `axes` (from `seed_axes`): the carry holds several seeds stacked on a leading axis and
    one compiled program advances them all on the same data (metrics get the seed axis).
    `guard`: also return the divergence guard's `health` (see `Health`): after every step
    the carry (parameters, optimizer and add-on states) and the losses are checked for
    inf / NaN, one reduction over the parameters per step. A NaN metric alone is no alarm:
    it marks a skipped sub-step (TD3's delayed actor); a NaN loss makes NaN parameters."""
    step = make_train_step(learner, addons, sampler)

    def chunk(carry: TrainCarry, data: DeviceData, length: jax.Array):
        shapes = jax.eval_shape(partial(step, data=data), carry, None)[1]
        sums, counts = nan_mean_init(shapes)
        zeros = _zeros_like_shapes(shapes)

        def body(i, state):
            carry, sums, counts, guard_state = state
            carry, metrics = step(carry, None, data)
            sums, counts = nan_mean_add(sums, counts, metrics)
            if guard:
                ok_all, first_bad, at_bad, before_bad, prev = guard_state
                no_inf = [~jnp.isinf(v).any() for v in jax.tree.leaves(metrics)]
                ok = all_finite(carry) & jnp.all(jnp.stack(no_inf)) if no_inf else all_finite(carry)
                newly_bad = ok_all & ~ok
                before = jax.tree.map(lambda p, m: jnp.where(i > 0, p, m), prev, metrics)
                guard_state = (
                    ok_all & ok,
                    jnp.where(newly_bad, i, first_bad),
                    jax.tree.map(lambda a, m: jnp.where(newly_bad, m, a), at_bad, metrics),
                    jax.tree.map(lambda b, m: jnp.where(newly_bad, m, b), before_bad, before),
                    metrics,
                )
            return carry, sums, counts, guard_state

        guard_state = (jnp.bool_(True), jnp.int32(0), zeros, zeros, zeros) if guard else ()
        carry, sums, counts, guard_state = jax.lax.fori_loop(
            0, length, body, (carry, sums, counts, guard_state)
        )
        carry = strong_types(carry)  # the next call's signature is this call's
        if not guard:
            return carry, nan_mean_result(sums, counts)
        ok_all, first_bad, at_bad, before_bad, _ = guard_state
        health = {
            "finite": ok_all,
            "first_bad": first_bad,  # index of the first non-finite step (0 when all are fine)
            "at_bad": at_bad,
            "before_bad": before_bad,
        }
        return carry, nan_mean_result(sums, counts), health

    @partial(jax.jit, donate_argnums=0)
    def train_chunk(carry: TrainCarry, data: DeviceData, length: int):
        run = partial(chunk, length=jnp.asarray(length, jnp.int32))
        return (run if axes is None else _vmap(run, axes, 3 if guard else 2))(carry, data)

    return train_chunk


def make_pretrain_chunk(
    learner: Learner, addons: tuple[AddOn, ...], sampler: SamplerSpec, axes: Any = None
):
    """Add-on-only updates before learning starts (e.g. DARA's classifiers trained beforehand).
    Each add-on trains for its own `pretrain_steps`; the learner is untouched. A jitted
    `(carry, data, length, start) -> (carry, last step's metrics)` running pretraining steps
    `start .. start + length - 1` (both traced: one compilation). `axes` as in
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

    def chunk(carry: TrainCarry, data: DeviceData, length: jax.Array, start: jax.Array):
        shapes = jax.eval_shape(partial(step, data=data), carry, start)[1]

        def body(i, state):
            return step(state[0], i, data)

        return jax.lax.fori_loop(start, start + length, body, (carry, _zeros_like_shapes(shapes)))

    @jax.jit
    def pretrain(carry: TrainCarry, data: DeviceData, length: int, start=0):
        run = partial(
            chunk, length=jnp.asarray(length, jnp.int32), start=jnp.asarray(start, jnp.int32)
        )
        return (run if axes is None else _vmap(run, axes))(carry, data)

    return pretrain


# -- chunk lengths ----------------------------------------------------------------------------
CHUNK_SECONDS = 2.0
"""Wall time one compiled call aims at. A compiled call cannot be interrupted: Ctrl-C, the
progress bar and the divergence guard wait for it, so it is kept to a few seconds whatever
the learner's step time (CQL at ~60 ms/step would otherwise run 1,000 steps, a minute)."""


class ChunkPacer:
    """How many steps the next compiled call runs: as many as take about `seconds` at the
    step rate measured on the previous calls (the first call, which compiles, is not
    measured), never past `limit` (the next evaluation or log step), growing at most
    `growth`-fold per call so one fast measurement cannot launch a minute-long call."""

    def __init__(self, seconds: float = CHUNK_SECONDS, first: int = 10, growth: int = 8):
        self.seconds, self.growth = seconds, growth
        self._length, self._calls = first, 0

    def next(self, limit: int) -> int:
        return max(1, min(self._length, limit))

    def done(self, length: int, seconds: float) -> None:
        self._calls += 1
        if self._calls == 1:  # compilation time says nothing about the step time
            return
        rate = length / max(seconds, 1e-6)
        self._length = max(1, min(int(rate * self.seconds), self._length * self.growth))


def next_boundary(step: int, steps: int, *every: int) -> int:
    """The first step after `step` where a chunk must end: a multiple of any of `every`
    (evaluations, loss logs) or the end of the run."""
    return min([steps, *((step // e + 1) * e for e in every if e > 0)])


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
