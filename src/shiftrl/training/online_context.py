"""Online training of recurrent (context) learners, with add-ons, on dynamics-randomized envs.

The loop of `online.py` (vectorized envs on the host, device replay, fused update bursts),
for a learner whose policy carries a hidden state (`ContextSAC`):

- acting: the encoders' carry is kept per environment and reset at every episode start
  (the `reset` flag is true on an episode's first step, where the previous action is 0);
- replay: one stream per environment, [num_envs, capacity], so a sampled transition's K
  preceding steps are its own episode's past (or, across a `reset` flag, another episode's,
  which the encoder forgets). Each row stores the encoders' hidden states *before* that
  step, as computed when the env was stepped;
- a training sample is a window of K = `learner.config.window` steps ending at the sampled
  transition: the learner re-encodes it from the hidden state stored at its first step with
  its current parameters (`ContextSAC.contexts`).

Why stored states plus a short re-encoded window (R2D2's "stored state + burn-in") rather
than either alone: re-encoding from zeros over a short window would train the encoder on
K-step histories while acting runs it over whole 1000-step episodes (a train/act mismatch);
stored states alone go stale as the encoder learns (MAPLE refreshes them every 4 epochs);
the window's K steps with current parameters wash most of the staleness out, and cost K
GRU steps per sample. Memory: 2 x 128 hidden units per stored step, kept in float16
(0.5 KB; with the transition, about 0.6 KB per step for hopper: 0.6 GB for a 1M buffer).

One update, in order (as the offline loop, `loop.make_train_step`): sample windows;
add-ons update their own networks on the batch (SRPO's discriminator ranks the batch's
states by `learner.batch_value`, with each state's own context); add-ons transform the
batch (SRPO adds its bonus to the reward, i.e. to the critic target); the learner updates
through the add-ons' hooks.

Evaluation runs the deterministic recurrent policy for `eval_episodes` episodes in every
listed dynamics (a randomized env's members, e.g. hopper-mass-0.5 / base / mass-2.0), the
carry reset at each episode's start, and logs `eval/<env>/...` per dynamics plus their mean
(`return`, `normalized_score`): the sample-efficiency curve is `normalized_score` (or
`return`) against `step`, the environment steps collected.

Resume restores learner, add-on states, replay, RNG key and counters from the last
checkpoint; the environments restart their episodes (a reset flag), so an online resume is
faithful but not bit-identical (as `online.py`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
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
from flax import struct

from shiftrl.addons.base import AddOn, AddOnContext
from shiftrl.core.errors import ConfigError
from shiftrl.core.jax_utils import strong_types
from shiftrl.core.progress import Progress, ProgressArg
from shiftrl.core.types import TARGET, Batch
from shiftrl.data.preprocess import Preprocessor
from shiftrl.learners.base import Hooks
from shiftrl.training import checkpoint, rundir
from shiftrl.training.evaluation import EvalResult, check_env_id, eval_seed
from shiftrl.training.logger import MetricWindow, RunLogger
from shiftrl.training.loop import all_finite
from shiftrl.training.online import OnlineConfig, identity_preprocessor
from shiftrl.training.vec_envs import VecEnvs, divergence_error

STEP_FIELDS = ("obs", "action", "reward", "next_obs", "terminal", "prev_action", "reset")
CARRY_FIELDS = ("carry_pi", "carry_q")


# -- replay of per-environment streams --------------------------------------------------------
class SequenceReplay(struct.PyTreeNode):
    data: dict[str, jax.Array]
    """Each field [num_envs, capacity, ...]; row t of stream e is env e's t-th step."""
    ptr: jax.Array
    size: jax.Array


def sequence_replay_init(
    num_envs: int, capacity: int, obs_dim: int, act_dim: int, hidden: int
) -> SequenceReplay:
    shapes = {
        "obs": (obs_dim,),
        "action": (act_dim,),
        "reward": (),
        "next_obs": (obs_dim,),
        "terminal": (),
        "prev_action": (act_dim,),
        "reset": (),
        "carry_pi": (hidden,),
        "carry_q": (hidden,),
    }
    # hidden states in half precision: they dominate the memory (2 x 128 per step), and the
    # window's burn-in with current parameters refreshes them anyway
    data = {
        k: jnp.zeros((num_envs, capacity, *s), jnp.float16 if k in CARRY_FIELDS else jnp.float32)
        for k, s in shapes.items()
    }
    return SequenceReplay(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


@partial(jax.jit, donate_argnums=0)
def sequence_replay_insert(replay: SequenceReplay, rows: dict[str, jax.Array]) -> SequenceReplay:
    """Append `rows` ([num_envs, L, ...]: L steps of every env) to the streams."""
    capacity = replay.data["reward"].shape[1]
    n = rows["reward"].shape[1]
    idx = (replay.ptr + jnp.arange(n)) % capacity
    data = {k: v.at[:, idx].set(rows[k].astype(v.dtype)) for k, v in replay.data.items()}
    return SequenceReplay(data, (replay.ptr + n) % capacity, jnp.minimum(replay.size + n, capacity))


def sample_windows(replay: SequenceReplay, rng: jax.Array, batch_size: int, window: int) -> Batch:
    """`batch_size` transitions, each with the `window` steps of its stream ending at it
    (`ContextSAC`'s `context/*` extras). Needs `replay.size >= window`."""
    num_envs, capacity = replay.data["reward"].shape[:2]
    k_env, k_pos = jax.random.split(rng)
    env = jax.random.randint(k_env, (batch_size,), 0, num_envs)
    # logical position from the oldest stored step: the window never reaches past it
    pos = jax.random.randint(k_pos, (batch_size,), window - 1, jnp.maximum(replay.size, window))
    oldest = (replay.ptr - replay.size) % capacity
    times = (oldest + pos[:, None] - jnp.arange(window - 1, -1, -1)) % capacity  # [B, K]
    seq = {k: v[env[:, None], times] for k, v in replay.data.items()}
    last = {k: v[:, -1] for k, v in seq.items()}
    extras = {
        "context/obs": seq["obs"],
        "context/prev_action": seq["prev_action"],
        "context/reset": seq["reset"] > 0.5,
        "context/carry_pi": seq["carry_pi"][:, 0].astype(jnp.float32),
        "context/carry_q": seq["carry_q"][:, 0].astype(jnp.float32),
    }
    return Batch(
        obs=last["obs"],
        action=last["action"],
        reward=last["reward"],
        next_obs=last["next_obs"],
        terminal=last["terminal"],
        domain=jnp.full((batch_size,), TARGET, jnp.int32),
        extras=extras,
    )


class ContextCarry(struct.PyTreeNode):
    learner: Any
    addons: dict[str, Any]
    replay: SequenceReplay
    rng: jax.Array
    env_steps: jax.Array


def make_context_burst(learner, addons: tuple[AddOn, ...], batch_size: int):
    """A jitted `(carry, length) -> (carry, mean metrics)` of `length` updates."""
    window = learner.config.window

    def one_update(carry: ContextCarry, _):
        rng, k_batch, k_addon, k_transform, k_learner = jax.random.split(carry.rng, 5)
        batch = sample_windows(carry.replay, k_batch, batch_size, window)
        ctx = AddOnContext(learner, carry.learner)
        states, metrics = dict(carry.addons), {}
        for i, ad in enumerate(addons):
            if ad.train_alongside:
                states[ad.name], m = ad.update(
                    states[ad.name], batch, ctx, jax.random.fold_in(k_addon, i)
                )
                metrics.update({f"addon/{ad.name}/{k}": v for k, v in m.items()})
        for i, ad in enumerate(addons):
            batch = ad.transform_batch(
                states[ad.name], batch, ctx, jax.random.fold_in(k_transform, i)
            )
        hooks = Hooks(addons, states, jax.random.fold_in(k_learner, 0x5EED))
        state, m = learner.update(carry.learner, batch, k_learner, hooks)
        metrics.update({**m, "batch/reward": batch.reward.mean()})
        return carry.replace(learner=state, addons=states, rng=rng), metrics

    @partial(jax.jit, static_argnames="length", donate_argnums=0)
    def burst(carry: ContextCarry, length: int):
        carry, metrics = jax.lax.scan(one_update, carry, None, length=length)
        return carry, jax.tree.map(lambda x: jnp.nanmean(x, axis=0), metrics)

    return burst


def compiled_functions(learner, addons: tuple[AddOn, ...], batch_size: int):
    """(jitted init, update burst, jitted explore_step, jitted act_step) for a learner,
    shared by runs with an equal learner config, spec and add-ons in one process (a resumed
    run, tests, seeds one after another), so each compiles once per process."""
    key = (type(learner), learner.config, learner.spec)
    init, explore_step, act_step = _jitted_learner(*key)
    try:
        burst = _burst(*key, tuple(addons), batch_size)
    except TypeError:  # an add-on that cannot be hashed: compile for this run alone
        burst = make_context_burst(learner, tuple(addons), batch_size)
    return init, burst, explore_step, act_step


@functools.lru_cache(maxsize=8)
def _jitted_learner(cls, config, spec):
    learner = cls(config, spec)
    return jax.jit(learner.init), jax.jit(learner.explore_step), jax.jit(learner.act_step)


@functools.lru_cache(maxsize=8)
def _burst(cls, config, spec, addons, batch_size):
    return make_context_burst(cls(config, spec), addons, batch_size)


# -- evaluation of a recurrent policy -------------------------------------------------------
def run_recurrent_episodes(
    act_step: Callable,
    learner_state: Any,
    learner,
    pre: Preprocessor,
    env_id: str,
    episodes: int,
    seed: int,
) -> np.ndarray:
    """One episode in each of `episodes` parallel envs with the recurrent deterministic
    policy; the carry starts at zero and `reset` is true on each episode's first step only.
    `act_step(state, carry, obs, prev_action, reset) -> (carry, unit action)`."""
    envs = gym.make_vec(check_env_id(env_id), num_envs=episodes, vectorization_mode="sync")
    try:
        obs, _ = envs.reset(seed=[seed + i for i in range(episodes)])
        carry = learner.initial_carry(episodes)
        prev = np.zeros((episodes, learner.spec.act_dim), np.float32)
        reset = np.ones(episodes, bool)
        returns, done = np.zeros(episodes), np.zeros(episodes, bool)
        while not done.all():
            carry, unit = act_step(learner_state, carry, pre.obs(obs), prev, reset)
            unit = np.asarray(unit)
            obs, reward, term, trunc, _ = envs.step(pre.action_to_env(unit))
            returns += np.where(done, 0.0, reward)  # finished envs auto-reset: ignore them
            done |= term | trunc
            prev, reset = unit, np.zeros(episodes, bool)
        return returns
    finally:
        envs.close()


def dynamics_envs(env_id: str) -> tuple[str, ...]:
    """Where to evaluate a run on `env_id`: a randomized env's members, else the env itself."""
    from shiftrl.envs.randomized import randomized_of

    r = randomized_of(env_id)
    return r.member_ids if r is not None else (env_id,)


# -- the run ----------------------------------------------------------------------------------
def train_context_online(
    learner,
    config: OnlineConfig,
    out: str | Path,
    *,
    addons: tuple[AddOn, ...] = (),
    eval_envs: Sequence[str] | None = None,
    resume: bool = False,
    progress: ProgressArg = True,
    callbacks: Sequence[Callable[[dict], None]] = (),
    extra_meta: dict | None = None,
) -> list[dict]:
    """Train the recurrent `learner` online in `config.env_id` (with `addons`, bound to it);
    returns the logged rows. `eval_envs` default: every dynamics of a randomized env."""
    env_id = check_env_id(config.env_id)
    if config.steps_per_iter % config.num_envs:
        raise ConfigError("steps_per_iter must be a multiple of num_envs")
    if config.offline_fraction or config.snapshot_every or config.learning_starts:
        raise ConfigError("context online runs have no offline data, snapshots or learning_starts")
    if not getattr(learner, "recurrent", False):
        raise ConfigError(f"{learner.name} is not a recurrent (context) learner")
    per_env = config.buffer_size // config.num_envs
    if per_env < learner.config.window:
        raise ConfigError("buffer_size / num_envs must hold at least one context window")
    eval_envs = tuple(check_env_id(e) for e in (eval_envs or dynamics_envs(env_id)))
    pre = identity_preprocessor(env_id)
    rng = jax.random.PRNGKey(config.seed)
    rng, k_init, k_addons = jax.random.split(rng, 3)
    states = {
        ad.name: ad.calibrate(ad.init(jax.random.fold_in(k_addons, i), learner.spec), pre)
        for i, ad in enumerate(addons)
    }
    replay = sequence_replay_init(
        config.num_envs,
        per_env,
        learner.spec.obs_dim,
        learner.spec.act_dim,
        learner.config.context_hidden,
    )
    init = compiled_functions(learner, addons, config.batch_size)[0]
    carry = ContextCarry(init(k_init), states, replay, rng, jnp.zeros((), jnp.int32))
    carry = strong_types(carry)  # one compilation of the update burst, not two
    run_dir = Path(out)
    rundir.check_target(run_dir)
    foreign = run_dir.exists() and not rundir.is_empty(run_dir) and not rundir.is_marked(run_dir)
    if foreign and not (resume and rundir.adoptable(run_dir)):
        raise ConfigError(
            f"run folder {run_dir} already exists and holds files shiftrl did not write; "
            "choose another folder"
        )
    rundir.make_dir(run_dir)
    with rundir.FolderLock(run_dir):
        fresh = not (resume and (run_dir / "config.json").exists())
        if fresh and not rundir.is_empty(run_dir):
            raise ConfigError(
                f"run folder {run_dir} already exists; resume it (--resume) or choose another folder"
            )
        rundir.mark(run_dir)
        if fresh:
            meta = {
                "kind": "online-context",
                "online_config": config.to_json(),
                "algo": learner.name,
                "learner": dataclasses.asdict(learner.config),
                "addons": [ad.to_json() for ad in addons],
                "eval_envs": list(eval_envs),
                "preprocessor": pre.to_json(),
                "obs_dim": learner.spec.obs_dim,
                "act_dim": learner.spec.act_dim,
                **(extra_meta or {}),
            }
            (run_dir / "config.json").write_text(json.dumps(meta, indent=2))
        elif checkpoint.latest(run_dir) is not None:
            _, carry = checkpoint.load_latest(run_dir, carry)
            carry = strong_types(carry)
        logger = RunLogger(run_dir)
        start = int(carry.env_steps)
        logger.truncate_after(start)
        loop = _ContextLoop(learner, addons, config, env_id, eval_envs, pre, run_dir, logger)
        loop.run(carry, start, progress, callbacks)
        logger.close()
        return logger.rows()


@dataclass
class _ContextLoop:
    learner: Any
    addons: tuple[AddOn, ...]
    config: OnlineConfig
    env_id: str
    eval_envs: tuple[str, ...]
    pre: Preprocessor
    run_dir: Path
    logger: RunLogger

    def __post_init__(self):
        _, self.burst, self.explore_step, self.act_step = compiled_functions(
            self.learner, self.addons, self.config.batch_size
        )
        self.finite = jax.jit(all_finite)

    def run(self, carry: ContextCarry, start: int, progress: ProgressArg, callbacks) -> None:
        c, n, act_dim = self.config, self.config.num_envs, self.learner.spec.act_dim
        envs = VecEnvs(self.env_id, n, c.seed, start)
        np_rng = np.random.default_rng(c.seed + start)
        enc = self.learner.initial_carry(n)
        prev, reset = np.zeros((n, act_dim), np.float32), np.ones(n, bool)
        steps, window, t0 = start, [], time.perf_counter()
        try:
            with Progress(
                f"{self.learner.name} online",
                c.total_steps,
                start=start,
                unit="env steps",
                rate_unit="env steps/s",
                progress=progress,
            ) as bar:
                while steps < c.total_steps:
                    rows = {k: [] for k in (*STEP_FIELDS, *CARRY_FIELDS)}
                    for _ in range(c.steps_per_iter // n):
                        obs_n = self.pre.obs(envs.obs)
                        k = jax.random.fold_in(carry.rng, steps)
                        carry_in = enc
                        enc, unit = self.explore_step(carry.learner, enc, obs_n, prev, reset, k)
                        unit = np.asarray(unit)
                        if steps < c.start_steps:  # SAC's warm-up; the encoders still step
                            unit = np_rng.uniform(-1.0, 1.0, (n, act_dim)).astype(np.float32)
                        _, reward, term, done, real_next = envs.step(self.pre.action_to_env(unit))
                        values = (
                            obs_n,
                            unit,
                            self.pre.reward(reward),
                            self.pre.obs(real_next),
                            term,
                            prev,
                            reset,
                            carry_in["pi"],
                            carry_in["q"],
                        )
                        for key, v in zip(rows, values, strict=True):
                            rows[key].append(np.asarray(v, np.float32))
                        # the next step starts a new episode where this one ended
                        prev = np.where(done[:, None], 0.0, unit).astype(np.float32)
                        reset = done.copy()
                        steps += n
                    rows = {k: jnp.asarray(np.stack(v, axis=1)) for k, v in rows.items()}
                    carry = carry.replace(
                        replay=sequence_replay_insert(carry.replay, rows),
                        env_steps=jnp.asarray(steps, jnp.int32),
                    )
                    if (
                        steps >= c.start_steps
                        and int(carry.replay.size) >= self.learner.config.window
                    ):
                        carry, metrics = self.burst(carry, int(c.steps_per_iter * c.utd))
                        window.append(metrics)
                        if not bool(self.finite(carry.learner)):
                            raise divergence_error(self.run_dir, steps)
                    bar.advance(c.steps_per_iter)
                    row = None
                    if steps % c.eval_every == 0 or steps >= c.total_steps:
                        row = self.log_row(carry, steps, window, envs.finished, t0)
                        window, envs.finished = [], []
                        bar.note(_score_note(row, steps))
                        for cb in callbacks:
                            cb(row)
                    if steps % c.checkpoint_every == 0 or steps >= c.total_steps:
                        score = row.get("normalized_score") if row else None
                        checkpoint.save(self.run_dir, steps, carry, keep=1, score=score)
        finally:
            envs.close()

    def evaluate(self, learner_state) -> dict[str, Any]:
        """Per-dynamics returns and normalized scores, and their means."""
        from shiftrl.envs.reference import reference_scores

        row, scores, returns = {}, [], []
        for env_id in self.eval_envs:
            rets = run_recurrent_episodes(
                self.act_step,
                learner_state,
                self.learner,
                self.pre,
                env_id,
                self.config.eval_episodes,
                eval_seed(self.config.seed),
            )
            res = EvalResult(env_id, rets, reference_scores(env_id))
            row.update({f"eval/{env_id}/{k}": v for k, v in res.to_json().items() if k != "env"})
            returns.append(res.mean_return)
            if not np.isnan(res.normalized):
                scores.append(res.normalized)
        row["return"] = float(np.mean(returns))
        row["normalized_score"] = float(np.mean(scores)) if len(scores) == len(returns) else None
        return row

    def log_row(self, carry, steps, window, finished, t0) -> dict:
        row: dict[str, Any] = {"step": steps}
        if window:
            means = MetricWindow()
            for metrics in window:  # one entry per update burst, equal weights
                means.add(metrics, 1)
            row.update({k: v for k, v in means.means().items() if v is not None})
        if finished:
            row["train/episode_return"] = float(np.mean(finished))
        row.update(self.evaluate(carry.learner))
        row["elapsed_s"] = time.perf_counter() - t0
        self.logger.log(row)
        return row


def _score_note(row: dict, steps: int) -> str:
    """The latest evaluation beside the progress bar."""
    if row.get("normalized_score") is not None:
        return f"score {row['normalized_score']:.1f} at step {steps:,}"
    return f"return {row['return']:.1f} at step {steps:,}" if "return" in row else ""
