"""Online training: vectorized environments on the host, replay buffer and updates on device.

Each iteration collects `steps_per_iter` transitions with `learner.explore` (uniform random
actions for the first `start_steps`), inserts them into a device-side ring buffer, then
runs `steps_per_iter * utd` updates fused in one `jit(lax.scan)`. The same loop trains the
zoo's behaviour policies (SAC from scratch) and fine-tunes offline policies (pass the
offline learner state, its preprocessor, and optionally the offline data as a prefill).

Resume restores learner, buffer, RNG key and counters from the last checkpoint; the
environments restart their episodes, so an online resume is faithful but not bit-identical.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization, struct

from shiftrl.core.errors import ConfigError
from shiftrl.core.interrupt import StopRequest
from shiftrl.core.jax_utils import strong_types
from shiftrl.core.progress import Progress, ProgressArg
from shiftrl.core.types import TARGET, Batch
from shiftrl.data.dataset import TransitionDataset
from shiftrl.data.preprocess import Preprocessor, apply
from shiftrl.learners.base import NO_HOOKS, Hooks, Learner
from shiftrl.training import checkpoint, rundir
from shiftrl.training.evaluation import check_env_id, eval_seed, evaluate
from shiftrl.training.logger import MetricWindow, RunLogger
from shiftrl.training.loop import (
    ChunkPacer,
    all_finite,
    nan_mean_add,
    nan_mean_init,
    nan_mean_result,
)
from shiftrl.training.vec_envs import VecEnvs, divergence_error

FIELDS = ("obs", "action", "reward", "next_obs", "terminal")


@dataclass(frozen=True)
class OnlineConfig:
    env_id: str
    total_steps: int = 1_000_000
    """Environment transitions to collect."""
    num_envs: int = 4
    start_steps: int = 10_000
    """Uniform random actions before the policy acts (SAC's warm-up); 0 when fine-tuning."""
    steps_per_iter: int = 1000
    """Transitions collected between two bursts of updates."""
    utd: float = 1.0
    """Gradient updates per collected transition."""
    batch_size: int = 256
    buffer_size: int = 1_000_000
    eval_every: int = 10_000
    eval_episodes: int = 5
    checkpoint_every: int = 50_000
    snapshot_every: int = 0
    """Save the actor every k transitions (behaviour-policy snapshots); 0 = never."""
    learning_starts: int = 0
    """Collect this many transitions with the policy before the first update (SSAR: 5000)."""
    offline_fraction: float = 0.0
    """Share of each batch drawn from a separate offline buffer (SSAR's 'half' replay)."""
    seed: int = 0

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


class Replay(struct.PyTreeNode):
    data: dict[str, jax.Array]
    ptr: jax.Array
    size: jax.Array


def replay_init(capacity: int, obs_dim: int, act_dim: int) -> Replay:
    shapes = {
        "obs": (obs_dim,),
        "action": (act_dim,),
        "reward": (),
        "next_obs": (obs_dim,),
        "terminal": (),
    }
    data = {k: jnp.zeros((capacity, *s), jnp.float32) for k, s in shapes.items()}
    return Replay(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


@partial(jax.jit, donate_argnums=0)
def replay_insert(replay: Replay, rows: dict[str, jax.Array]) -> Replay:
    capacity = replay.data["reward"].shape[0]
    n = rows["reward"].shape[0]
    idx = (replay.ptr + jnp.arange(n)) % capacity
    data = {k: replay.data[k].at[idx].set(rows[k]) for k in FIELDS}
    return Replay(data, (replay.ptr + n) % capacity, jnp.minimum(replay.size + n, capacity))


def prefill(
    replay: Replay, ds: TransitionDataset, pre: Preprocessor, chunk: int = 100_000
) -> Replay:
    arrays = apply(ds, pre)
    for start in range(0, len(ds), chunk):
        replay = replay_insert(
            replay, {k: jnp.asarray(v[start : start + chunk]) for k, v in arrays.items()}
        )
    return replay


class OnlineCarry(struct.PyTreeNode):
    learner: Any
    replay: Replay
    rng: jax.Array
    env_steps: jax.Array
    extra: dict = struct.field(default_factory=dict)
    """Fine-tuning with add-ons: {"addons": their states, "updates": online update count}."""


def make_update_burst(
    learner: Learner,
    batch_size: int,
    addons: tuple = (),
    total_updates: int = 0,
    offline_fraction: float = 0.0,
):
    """A jitted `(carry, offline, length) -> (carry, mean metrics)` of `length` updates.

    Add-ons act through their hooks with the state `online_step(state, t, total_updates)`
    gives (SPOT's lambda, SSAR's beta scale); their own networks stay frozen online.
    `offline` (arrays, or None) supplies `offline_fraction` of every batch."""
    n_off = round(batch_size * offline_fraction)

    def one_update(carry: OnlineCarry, _, offline):
        rng, k_idx, k_up = jax.random.split(carry.rng, 3)
        idx = jax.random.randint(k_idx, (batch_size,), 0, jnp.maximum(carry.replay.size, 1))
        rows = {k: v[idx] for k, v in carry.replay.data.items()}
        if n_off:
            size = offline["reward"].shape[0]
            off_idx = jax.random.randint(jax.random.fold_in(k_idx, 1), (n_off,), 0, size)
            rows = {
                k: jnp.concatenate([v[: batch_size - n_off], offline[k][off_idx]])
                for k, v in rows.items()
            }
        batch = Batch(**rows, domain=jnp.full((batch_size,), TARGET, jnp.int32))
        hooks, extra = NO_HOOKS, carry.extra
        if addons:
            t = extra["updates"]
            states = {
                ad.name: ad.online_step(extra["addons"][ad.name], t, total_updates) for ad in addons
            }
            hooks = Hooks(addons, states, jax.random.fold_in(k_up, 0x5EED))
            extra = {"addons": states, "updates": t + 1}
        state, metrics = learner.update(carry.learner, batch, k_up, hooks)
        return carry.replace(learner=state, rng=rng, extra=extra), metrics

    @partial(jax.jit, donate_argnums=0)
    def burst(carry: OnlineCarry, offline, length: int):
        # `length` traced: one compilation for the paced sub-bursts of any length
        update = partial(one_update, offline=offline)
        shapes = jax.eval_shape(update, carry, None)[1]
        sums, counts = nan_mean_init(shapes)

        def body(_, state):
            carry, sums, counts = state
            carry, metrics = update(carry, None)
            return (carry, *nan_mean_add(sums, counts, metrics))

        carry, sums, counts = jax.lax.fori_loop(0, length, body, (carry, sums, counts))
        return strong_types(carry), nan_mean_result(sums, counts)

    return burst


def identity_preprocessor(env_id: str) -> Preprocessor:
    env = gym.make(check_env_id(env_id))
    try:
        obs_dim = int(np.prod(env.observation_space.shape))
        low, high = (
            env.action_space.low.astype(np.float32),
            env.action_space.high.astype(np.float32),
        )
    finally:
        env.close()
    return Preprocessor(np.zeros(obs_dim, np.float32), np.ones(obs_dim, np.float32), low, high)


def train_online(
    learner: Learner,
    config: OnlineConfig,
    out: str | Path,
    *,
    pre: Preprocessor | None = None,
    init_state: Any = None,
    prefill_data: TransitionDataset | None = None,
    resume: bool = False,
    progress: ProgressArg = True,
    callbacks: Sequence[Callable[[dict], None]] = (),
    extra_meta: dict | None = None,
    reference: tuple[float, float] | None = None,
    addons: tuple = (),
    addon_states: dict | None = None,
    offline_data: TransitionDataset | None = None,
) -> list[dict]:
    """Train `learner` online in `config.env_id`; returns the logged rows.

    Fine-tuning passes the offline `init_state`, `pre`, and either `prefill_data` (the
    replay buffer starts with it) or `offline_data` (kept apart and sampled at
    `config.offline_fraction`), plus the run's `addons` and their `addon_states`."""
    env_id = check_env_id(config.env_id)
    if config.steps_per_iter % config.num_envs:
        raise ConfigError("steps_per_iter must be a multiple of num_envs")
    pre = pre or identity_preprocessor(env_id)
    run_dir = Path(out)
    rng = jax.random.PRNGKey(config.seed)
    rng, k_init = jax.random.split(rng)
    state = init_state if init_state is not None else learner.init(k_init)
    replay = replay_init(config.buffer_size, learner.spec.obs_dim, learner.spec.act_dim)
    if prefill_data is not None:
        replay = prefill(replay, prefill_data, pre)
    extra = {}
    if addons:
        extra = {"addons": dict(addon_states or {}), "updates": jnp.zeros((), jnp.int32)}
    carry = strong_types(OnlineCarry(state, replay, rng, jnp.zeros((), jnp.int32), extra))
    offline = None
    if offline_data is not None and config.offline_fraction > 0:
        offline = {k: jnp.asarray(v) for k, v in apply(offline_data, pre).items()}
    elif config.offline_fraction > 0:
        raise ConfigError("offline_fraction > 0 needs offline_data")

    rundir.check_target(run_dir)
    foreign = run_dir.exists() and not rundir.is_empty(run_dir) and not rundir.is_marked(run_dir)
    if foreign and not (resume and rundir.adoptable(run_dir)):
        raise ConfigError(
            f"run folder {run_dir} already exists and holds files shiftrl did not write; "
            "choose another folder"
        )
    rundir.make_dir(run_dir)
    prefilled = len(prefill_data) if prefill_data is not None else 0
    loop = _OnlineLoop(
        learner,
        config,
        env_id,
        pre,
        run_dir,
        RunLogger,
        reference,
        tuple(addons),
        offline,
        prefilled,
    )
    with rundir.FolderLock(run_dir):
        return loop.start(carry, resume, progress, callbacks, extra_meta)


@dataclass
class _OnlineLoop:
    learner: Learner
    config: OnlineConfig
    env_id: str
    pre: Preprocessor
    run_dir: Path
    make_logger: Any
    """RunLogger, opened by `start` once the folder is locked and checked."""
    reference: tuple[float, float] | None = None
    """Reference scores for the normalized score (default: the env registry's)."""
    addons: tuple = ()
    offline: dict | None = None
    prefilled: int = 0
    """Rows of offline data the buffer starts with (rebuilt on resume, never saved)."""

    def __post_init__(self):
        c = self.config
        self.explore = jax.jit(self.learner.explore)
        self.finite = jax.jit(all_finite)
        self.act = jax.jit(self.learner.act)
        first = max(c.start_steps, c.learning_starts)
        total_updates = int(max(c.total_steps - first, 0) * c.utd)
        self.burst = make_update_burst(
            self.learner, c.batch_size, self.addons, total_updates, c.offline_fraction
        )
        self.pacer = ChunkPacer()
        self.window, self.finished = MetricWindow(), []

    def start(self, carry, resume, progress, callbacks, extra_meta) -> list[dict]:
        """In the locked folder: a fresh run writes config.json, a resumed one loads its
        last checkpoint (and the updates an interrupt left owing); then train."""
        run_dir, config, learner = self.run_dir, self.config, self.learner
        fresh = not (resume and (run_dir / "config.json").exists())
        if fresh and not rundir.is_empty(run_dir):
            raise ConfigError(
                f"run folder {run_dir} already exists; resume it (--resume) or choose another "
                "folder"
            )
        rundir.mark(run_dir)
        owed = 0
        if fresh:
            meta = {
                "online_config": config.to_json(),
                "algo": learner.name,
                "learner": dataclasses.asdict(learner.config),
                "preprocessor": self.pre.to_json(),
                "obs_dim": learner.spec.obs_dim,
                "act_dim": learner.spec.act_dim,
                **(extra_meta or {}),
            }
            (run_dir / "config.json").write_text(json.dumps(meta, indent=2))
        elif checkpoint.latest(run_dir) is not None:
            extra = checkpoint.load_extra(checkpoint.latest(run_dir))
            carry = self.load_checkpoint(carry, extra)
            owed = int(extra.get("updates_owed", 0))
            self.window = MetricWindow.from_json(extra.get("window"))
        self.logger = self.make_logger(run_dir)
        start = int(carry.env_steps)
        self.logger.truncate_after(start)
        with StopRequest() as stop:
            self.run(carry, start, progress, callbacks, stop, owed)
        self.logger.close()
        return self.logger.rows()

    def run(
        self,
        carry: OnlineCarry,
        start: int,
        progress: ProgressArg,
        callbacks,
        stop: StopRequest,
        owed: int = 0,
    ) -> None:
        c = self.config
        # the episodes' returns go straight into the list `log_row` reports and clears
        envs = VecEnvs(self.env_id, c.num_envs, c.seed, start, finished=self.finished)
        np_rng = np.random.default_rng(c.seed + start)
        steps, t0 = start, time.perf_counter()
        try:
            with Progress(
                f"{self.learner.name} online",
                c.total_steps,
                start=start,
                unit="env steps",
                rate_unit="env steps/s",
                progress=progress,
            ) as bar:
                if owed:  # an interrupt left these updates of the last iteration undone
                    carry = self.update(carry, owed, steps, stop)
                    carry = self.after_iteration(carry, steps, bar, callbacks, t0)
                while steps < c.total_steps:
                    rows = {k: [] for k in FIELDS}
                    for _ in range(c.steps_per_iter // c.num_envs):
                        obs_n = self.pre.obs(envs.obs)
                        if steps < c.start_steps:
                            unit = np_rng.uniform(
                                -1.0, 1.0, (c.num_envs, self.learner.spec.act_dim)
                            ).astype(np.float32)
                        else:
                            k = jax.random.fold_in(carry.rng, steps)
                            unit = np.asarray(self.explore(carry.learner, obs_n, k))
                        _, reward, term, _, real_next = envs.step(self.pre.action_to_env(unit))
                        for k_, v in zip(
                            FIELDS,
                            (obs_n, unit, self.pre.reward(reward), self.pre.obs(real_next), term),
                            strict=True,
                        ):
                            rows[k_].append(np.asarray(v, np.float32))
                        steps += c.num_envs
                    rows = {k: jnp.asarray(np.concatenate(v)) for k, v in rows.items()}
                    carry = carry.replace(
                        replay=replay_insert(carry.replay, rows),
                        env_steps=jnp.asarray(steps, jnp.int32),
                    )
                    if steps >= c.start_steps and steps > c.learning_starts:
                        carry = self.update(carry, int(c.steps_per_iter * c.utd), steps, stop)
                    bar.advance(c.steps_per_iter)
                    carry = self.after_iteration(carry, steps, bar, callbacks, t0)
                    if stop.requested and steps < c.total_steps:
                        self.save_interrupted(carry, steps, 0)
                        stop.check()
        finally:
            envs.close()

    def update(self, carry: OnlineCarry, updates: int, steps: int, stop: StopRequest):
        """`updates` gradient updates in compiled sub-bursts of a few seconds each; on a stop
        request, a checkpoint records the updates still owed and the run stops."""
        left = updates
        while left:
            n = self.pacer.next(left)
            t = time.perf_counter()
            carry, metrics = self.burst(carry, self.offline, n)
            self.window.add(jax.device_get(metrics), n)  # waits for the sub-burst
            self.pacer.done(n, time.perf_counter() - t)
            left -= n
            if not bool(self.finite(carry.learner)):
                raise divergence_error(self.run_dir, steps)
            if stop.requested and left:
                self.save_interrupted(carry, steps, left)
                stop.check()
        return carry

    def after_iteration(self, carry, steps: int, bar, callbacks, t0: float) -> OnlineCarry:
        c = self.config
        if c.snapshot_every and steps % c.snapshot_every == 0:
            self.save_snapshot(carry, steps)
        if steps % c.eval_every == 0 or steps >= c.total_steps:
            row = self.log_row(carry, steps, t0)
            if row.get("normalized_score") is not None:
                bar.note(f"score {row['normalized_score']:.1f} at {steps:,}")
            for cb in callbacks:
                cb(row)
        if steps % c.checkpoint_every == 0 or steps >= c.total_steps:
            self.save(carry, steps)
        return carry

    def save(self, carry: OnlineCarry, steps: int, extra: dict | None = None) -> None:
        """A checkpoint holding only the replay rows that cannot be rebuilt: not the empty
        rest of the preallocated buffer, and not the prefilled offline data (the resumed
        run prefills it again; fine-tuning checks the data's checksums), while the buffer
        has not wrapped around. `replay_rows` records which rows [first, last) it holds."""
        replay = carry.replay
        capacity = replay.data["reward"].shape[0]
        size, ptr = int(replay.size), int(replay.ptr)
        first, last = (self.prefilled, size) if size < capacity and ptr == size else (0, capacity)
        rows = {k: v[first:last] for k, v in replay.data.items()}
        kept = carry.replace(replay=replay.replace(data=rows))
        extra = {**(extra or {}), "replay_rows": [first, last]}
        checkpoint.save(self.run_dir, steps, kept, keep=1, extra=extra)

    def load_checkpoint(self, carry: OnlineCarry, extra: dict) -> OnlineCarry:
        """The last checkpoint into `carry` (whose buffer already holds the prefill):
        its saved rows go back in place; a checkpoint without `replay_rows` holds them all."""
        replay = carry.replay
        capacity = replay.data["reward"].shape[0]
        first, last = extra.get("replay_rows", (0, capacity))
        template = carry.replace(
            replay=replay.replace(data={k: v[first:last] for k, v in replay.data.items()})
        )
        _, loaded = checkpoint.load_latest(self.run_dir, template)
        data = {k: replay.data[k].at[first:last].set(v) for k, v in loaded.replay.data.items()}
        return loaded.replace(replay=loaded.replay.replace(data=data))

    def save_interrupted(self, carry: OnlineCarry, steps: int, owed: int) -> None:
        """Ctrl-C: a checkpoint of the environment step reached, the updates of its
        iteration still owed and the metric sums since the last evaluation."""
        extra = {"updates_owed": owed, "window": self.window.to_json()}
        self.save(carry, steps, extra)
        print(
            f"shiftrl: saved a checkpoint at environment step {steps:,}; continue with "
            f"--resume (out {self.run_dir})",
            file=sys.stderr,
            flush=True,
        )

    def log_row(self, carry, steps, t0) -> dict:
        c = self.config
        row: dict[str, Any] = {"step": steps}
        if self.window:
            row.update(self.window.means())
        if self.finished:
            row["train/episode_return"] = float(np.mean(self.finished))
        self.window = MetricWindow()
        self.finished.clear()  # the list the environments append to
        state = carry.learner

        def policy(o):
            return np.asarray(self.act(state, o))

        res = evaluate(
            policy, self.pre, self.env_id, c.eval_episodes, eval_seed(c.seed), self.reference
        )
        row.update(
            {
                "return": res.mean_return,
                "normalized_score": res.normalized,
                "returns": res.returns.tolist(),
            }
        )
        row["elapsed_s"] = time.perf_counter() - t0
        self.logger.log(row)
        return row

    def save_snapshot(self, carry: OnlineCarry, steps: int) -> None:
        path = self.run_dir / "snapshots" / f"actor_{steps:010d}.msgpack"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(serialization.to_bytes(carry.learner.actor.params))
