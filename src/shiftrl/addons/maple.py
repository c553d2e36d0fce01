"""MAPLE's data path as an add-on: segments of the real data and of model rollouts.

The `maple` learner (learners/maple.py) trains on segment batches (`core.types`); this
add-on, a MOPO add-on (`rollouts.py`: the same dynamics ensemble, unit conversions and
termination functions) with segment-shaped storage, provides them, as the PyTorch MAPLE
(polixir/OfflineRL `maple.py`, the base of SRPO's `maple_st` / `maple_dara`) does:

- `prepare`: the ensemble is trained on all the run's data (every dynamics of the mix,
  `model_data="all"`), and every episode of every dataset is cut into consecutive
  segments of `horizon` steps (the last one of an episode shorter);
- `update`, every `refresh_every` steps (step 0 included): both context encoders run over
  every whole episode (reset at its start) and the recurrent state at each segment's first
  step is stored (MAPLE: every 4 epochs); every `rollout_every` steps: `rollout_batch` model
  rollouts of `horizon` steps start at random real segments (their stored states and
  previous action) and follow the learner's stochastic policy, carrying its recurrent
  state, each rollout through ONE elite model drawn at its start (`elite_per=trajectory`).
  Model rewards are clip(r, r_min - penalty_clip * penalty, r_max) - penalty * min(u,
  penalty_clip) with u = max_k ||sigma_k|| (MOPO's aleatoric uncertainty); next states are
  clipped to the data's range widened by 5% (at least +-100). Rollouts do not stop at a
  termination: later steps are kept with `valid = 0`. Each rollout is one stored segment;
- `sample_batch`: the step's batch is `batch_size` real segments drawn uniformly from each
  source's segments (the loop's per-source shares), with their stored states: SRPO's
  discriminator and DARA's classifiers train on these real segments;
- `transform_batch`: round(real_ratio * B) of them (evenly spread) are kept and the rest
  replaced by model segments, labelled `MODEL`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from shiftrl.addons.base import AddOnContext
from shiftrl.addons.rollouts import MOPO
from shiftrl.core.errors import ConfigError
from shiftrl.core.types import (
    MODEL,
    SEGMENT_HIDDEN_POLICY,
    SEGMENT_HIDDEN_VALUE,
    SEGMENT_LEVEL,
    SEGMENT_PREV_ACTION,
    SEGMENT_REWARD_RANGE,
    SEGMENT_VALID,
    Batch,
)
from shiftrl.learners.base import Learner, LearnerSpec

SEGMENT_FIELDS = ("obs", "action", "reward", "next_obs", "terminal", "prev_action", "valid")


@dataclass(frozen=True)
class SegmentTable:
    """One dataset's episodes and their length-H segments (host arrays, built in prepare)."""

    episode_start: np.ndarray  # [E] first row of each episode
    episode_length: np.ndarray  # [E]
    segment_episode: np.ndarray  # [S] episode of each segment
    segment_block: np.ndarray  # [S] position of the segment in its episode (t = block * H)

    @property
    def blocks(self) -> int:
        return int(self.segment_block.max()) + 1


def segment_table(dataset: Any, horizon: int) -> SegmentTable:
    starts = np.asarray(dataset.episode_starts, np.int64)
    lengths = np.asarray(dataset.episode_ends, np.int64) - starts + 1
    blocks = -(-lengths // horizon)
    return SegmentTable(
        episode_start=starts.astype(np.int32),
        episode_length=lengths.astype(np.int32),
        segment_episode=np.repeat(np.arange(len(starts)), blocks).astype(np.int32),
        segment_block=np.concatenate([np.arange(b) for b in blocks]).astype(np.int32),
    )


@dataclass(frozen=True)
class MAPLEModel(MOPO):
    name: ClassVar[str] = "maple-model"
    description: ClassVar[str] = (
        "MAPLE's segments: real-data and model-rollout segments with stored recurrent states"
    )

    # MAPLE's settings (PyTorch MAPLE / SRPO's released code): H 10, lambda 0.25, penalty
    # clip 40, 20 models / 14 elites, one elite per trajectory, 50k rollouts every 1000
    # steps, a pool of 250k segments, 5% real data, states refreshed every 4000 steps
    penalty: float = 0.25
    horizon: int = 10
    rollout_batch: int = 50_000
    rollout_every: int = 1000
    retain_epochs: int = 5
    real_ratio: float = 0.05
    model_members: int = 20
    model_elites: int = 14
    model_data: str = "all"
    elite_per: str = "trajectory"
    penalty_clip: float = 40.0
    """u is clipped at this before the penalty; model rewards are clipped below at
    r_min - penalty_clip * penalty (MAPLE's `penalty_clip`)."""
    refresh_every: int = 4000
    """Train steps between recomputations of the stored recurrent states of the real
    segments (MAPLE: every 4 epochs of 1000 steps)."""

    def check(self, learner: Learner) -> None:
        if not learner.recurrent:
            raise ConfigError(
                f"maple-model draws segments for a recurrent learner (--algo maple); "
                f"{learner.name} is not one (use --addon mopo)"
            )
        if self.penalty_clip <= 0 or self.refresh_every < 1:
            raise ConfigError("maple-model: penalty_clip and refresh_every must be positive")
        if self.uncertainty != "aleatoric":
            raise ConfigError("maple-model: MAPLE penalizes the aleatoric uncertainty only")
        if not 0.0 < self.real_ratio <= 1.0:
            raise ConfigError("maple-model: real_ratio must be in (0, 1]")
        # MOPO's checks, but real_ratio = 1 is allowed here: real segments only, no model
        MOPO.check(dataclasses.replace(self, real_ratio=min(self.real_ratio, 0.5)), learner)

    @property
    def uses_model(self) -> bool:
        """False with real_ratio = 1: the recurrent learner on real segments only (no
        ensemble is trained, no rollouts; the PyTorch MAPLE's real_ratio = 1 branch)."""
        return self.real_ratio < 1.0

    @property
    def capacity(self) -> int:
        """Segments the model pool holds."""
        return self.rollout_batch * self.retain_epochs if self.uses_model else 0

    # -- data ---------------------------------------------------------------------------------
    @property
    def tables(self) -> tuple[SegmentTable, ...] | None:
        return getattr(self, "_tables", None)

    def prepare(self, datasets: list[Any], preprocessor: Any, progress: bool = True):
        if self.uses_model:
            ready = super().prepare(datasets, preprocessor, progress)
        else:
            ready = dataclasses.replace(self)
        object.__setattr__(ready, "_context_hidden", self.context_hidden)
        object.__setattr__(
            ready,
            "_reward_units",
            (float(preprocessor.reward_scale), float(preprocessor.reward_bias)),
        )
        tables = tuple(segment_table(d, self.horizon) for d in datasets)
        rewards = np.concatenate([np.asarray(d.rewards, np.float64) for d in datasets])
        obs = np.concatenate([np.asarray(d.observations) for d in datasets])
        low, high = obs.min(0), obs.max(0)
        widen = 0.05 * (high - low)
        object.__setattr__(ready, "_tables", tables)
        object.__setattr__(
            ready,
            "_bounds",
            {
                "reward": (float(rewards.min()), float(rewards.max())),
                "obs_low": np.minimum(low - widen, -100.0).astype(np.float32),
                "obs_high": np.maximum(high + widen, 100.0).astype(np.float32),
            },
        )
        return ready

    # -- state --------------------------------------------------------------------------------
    def init(self, rng: jax.Array, spec: LearnerSpec) -> dict:
        state = super().init(rng, spec)
        del state["buffer"]  # MOPO's transition buffer: MAPLE stores segments instead
        c, h, d, a = self.capacity, self.horizon, spec.obs_dim, spec.act_dim
        # the recurrent states' size is the learner's `context_units` (read in `bind`)
        state["pool"] = {
            "obs": jnp.zeros((c, h, d)),
            "action": jnp.zeros((c, h, a)),
            "reward": jnp.zeros((c, h)),
            "next_obs": jnp.zeros((c, h, d)),
            "terminal": jnp.zeros((c, h)),
            "prev_action": jnp.zeros((c, h, a)),
            "valid": jnp.zeros((c, h)),
            "hidden_policy": jnp.zeros((c, self.context_hidden)),
            "hidden_value": jnp.zeros((c, self.context_hidden)),
        }
        if self.tables is not None:  # a run's state; a bare template (load_policy) has none
            state["segments"] = tuple(
                {
                    "hidden_policy": jnp.zeros((len(t.segment_block), self.context_hidden)),
                    "hidden_value": jnp.zeros((len(t.segment_block), self.context_hidden)),
                }
                for t in self.tables
            )
        return state

    @property
    def context_hidden(self) -> int:
        return getattr(self, "_context_hidden", 128)

    def bind(self, learner: Learner) -> MAPLEModel:
        self.check(learner)
        bound = dataclasses.replace(self)
        object.__setattr__(bound, "_context_hidden", int(learner.config.context_units))
        for key in ("_prepared", "_tables", "_bounds", "_reward_units"):
            if hasattr(self, key):
                object.__setattr__(bound, key, getattr(self, key))
        return bound

    # -- real segments ------------------------------------------------------------------------
    def _tables_device(self, i: int) -> dict[str, jax.Array]:
        t = self.tables[i]
        return {
            "episode_start": jnp.asarray(t.episode_start),
            "episode_length": jnp.asarray(t.episode_length),
            "segment_episode": jnp.asarray(t.segment_episode),
            "segment_block": jnp.asarray(t.segment_block),
        }

    def _segment_rows(self, i: int, seg: jax.Array):
        """Rows [n, H] of segments `seg` of source i, their valid mask, and whether each
        step is its episode's first."""
        t = self._tables_device(i)
        episode, block = t["segment_episode"][seg], t["segment_block"][seg]
        first_t = block * self.horizon
        length = jnp.minimum(self.horizon, t["episode_length"][episode] - first_t)
        k = jnp.arange(self.horizon)
        valid = k[None] < length[:, None]
        rows = (
            t["episode_start"][episode][:, None]
            + first_t[:, None]
            + jnp.minimum(k, length[:, None] - 1)
        )
        return rows, valid, (first_t[:, None] + k[None]) == 0

    def real_segments(self, state: dict, data: dict, i: int, n: int, domain: int, rng) -> Batch:
        """n uniformly drawn segments of source i as a flat segment batch."""
        seg = jax.random.randint(rng, (n,), 0, len(self.tables[i].segment_block))
        rows, valid, first = self._segment_rows(i, seg)
        gathered = {k: v[rows].reshape(n * self.horizon, *v.shape[1:]) for k, v in data.items()}
        prev = jnp.where(first[..., None], 0.0, data["action"][jnp.maximum(rows - 1, 0)])
        low, high = self.reward_range_learner()
        extras = {k: v for k, v in gathered.items() if k not in SEGMENT_FIELDS[:5]}
        extras.update(
            {
                SEGMENT_PREV_ACTION: prev.reshape(n * self.horizon, -1),
                SEGMENT_VALID: valid.reshape(-1).astype(jnp.float32),
                SEGMENT_HIDDEN_POLICY: state["segments"][i]["hidden_policy"][seg],
                SEGMENT_HIDDEN_VALUE: state["segments"][i]["hidden_value"][seg],
                SEGMENT_REWARD_RANGE: jnp.tile(jnp.stack([low, high]), (n, 1)),
            }
        )
        return Batch(
            obs=gathered["obs"],
            action=gathered["action"],
            reward=gathered["reward"],
            next_obs=gathered["next_obs"],
            terminal=gathered["terminal"],
            domain=jnp.full((n * self.horizon,), domain, jnp.int32),
            extras=extras,
        )

    def reward_range_learner(self) -> tuple[float, float]:
        """[r_min - penalty_clip * penalty, r_max] in the learner's reward units (the range of
        the TD-target clip and of the model rewards)."""
        (scale, bias), (low, high) = self._reward_units, self._bounds["reward"]
        low = low - self.penalty_clip * self.penalty
        return low * scale + bias, high * scale + bias

    def sample_batch(self, state: dict, batch: Batch, ctx: AddOnContext, rng: jax.Array) -> Batch:
        parts = []
        for i, (n, domain) in enumerate(zip(ctx.sampler.counts, ctx.sampler.domains, strict=True)):
            if n:
                parts.append(
                    self.real_segments(state, ctx.data[i], i, n, domain, jax.random.fold_in(rng, i))
                )
        return Batch.concat(parts) if len(parts) > 1 else parts[0]

    # -- recurrent states of the real segments ------------------------------------------------
    def refresh(self, state: dict, ctx: AddOnContext) -> dict:
        """Both encoders over every whole episode; the states entering each segment stored."""
        learner, params = ctx.learner, ctx.learner_state
        out = []
        for i, table in enumerate(self.tables):
            data, t = ctx.data[i], self._tables_device(i)
            n_ep = len(table.episode_start)

            def step(carry, t_step, data=data, t=t):
                live = t_step < t["episode_length"]
                rows = jnp.where(live, t["episode_start"] + t_step, 0)
                prev = (
                    jnp.where((t_step > 0) & live, 1.0, 0.0)[:, None]
                    * data["action"][jnp.maximum(rows - 1, 0)]
                )
                reset = jnp.full(live.shape, t_step == 0)
                new, _ = learner.context_step(params, carry, data["obs"][rows], prev, reset)
                # an episode that has ended keeps its last state (never read again)
                return jax.tree.map(lambda n, o: jnp.where(live[:, None], n, o), new, carry), None

            def block(carry, b):
                entering = (carry["policy"], carry["value"])
                carry, _ = jax.lax.scan(step, carry, b * self.horizon + jnp.arange(self.horizon))
                return carry, entering

            carry = learner.initial_carry(n_ep)
            _, (h_p, h_v) = jax.lax.scan(block, carry, jnp.arange(table.blocks))
            b, e = t["segment_block"], t["segment_episode"]
            out.append({"hidden_policy": h_p[b, e], "hidden_value": h_v[b, e]})
        return {**state, "segments": tuple(out)}

    # -- model rollouts -----------------------------------------------------------------------
    def rollout(self, state: dict, ctx: AddOnContext, rng: jax.Array) -> tuple[dict, dict]:
        """`rollout_batch` segments from random real segment starts, one elite each."""
        from shiftrl.dynamics import sample_step, termination_fn

        p, model = self.prepared, state["model"]
        done_fn = termination_fn(p.termination)
        sizes = np.array([len(t.segment_block) for t in self.tables], float)
        shares = np.floor(self.rollout_batch * sizes / sizes.sum()).astype(int)
        shares[0] += self.rollout_batch - shares.sum()
        k_start, k_members, k_steps = jax.random.split(rng, 3)
        starts = []
        for i, n in enumerate(shares):
            if n == 0:
                continue
            seg = jax.random.randint(jax.random.fold_in(k_start, i), (int(n),), 0, int(sizes[i]))
            rows, _, first = self._segment_rows(i, seg)
            data, row = ctx.data[i], rows[:, 0]
            prev = jnp.where(first[:, :1], 0.0, ctx.data[i]["action"][jnp.maximum(row - 1, 0)])
            starts.append(
                {
                    "obs": data["obs"][row],
                    "prev_action": prev,
                    "hidden_policy": state["segments"][i]["hidden_policy"][seg],
                    "hidden_value": state["segments"][i]["hidden_value"][seg],
                }
            )
        start = jax.tree.map(lambda *xs: jnp.concatenate(xs), *starts)
        members = self.trajectory_members(model, k_members)
        r_low_raw = self._bounds["reward"][0] - self.penalty_clip * self.penalty
        r_high_raw = self._bounds["reward"][1]
        obs_low, obs_high = self._bounds["obs_low"], self._bounds["obs_high"]
        carry = {"policy": start["hidden_policy"], "value": start["hidden_value"]}
        no_reset = jnp.zeros(self.rollout_batch, bool)

        def step(loop, key):
            obs, carry, prev, alive = loop
            k_act, k_model = jax.random.split(key)
            carry, action = ctx.learner.explore_step(
                ctx.learner_state, carry, obs, prev, no_reset, k_act
            )
            raw_obs = obs * p.obs_std + p.obs_mean
            raw_action = p.act_center + p.act_half * jnp.clip(action, -1.0, 1.0)
            raw_next, raw_reward, u = sample_step(
                model, raw_obs, raw_action, k_model, self.uncertainty, members
            )
            u = jnp.minimum(u, self.penalty_clip)
            penalized = jnp.clip(raw_reward, r_low_raw, r_high_raw) - self.penalty * u
            done = done_fn(raw_obs, raw_action, raw_next)
            next_obs = (jnp.clip(raw_next, obs_low, obs_high) - p.obs_mean) / p.obs_std
            out = {
                "obs": obs,
                "action": action,
                "reward": penalized * p.reward_scale + p.reward_bias,
                "next_obs": next_obs,
                "terminal": done.astype(jnp.float32),
                "prev_action": prev,
                "valid": alive.astype(jnp.float32),
            }
            return (next_obs, carry, action, alive & ~done), (out, u)

        loop = (start["obs"], carry, start["prev_action"], jnp.ones(self.rollout_batch, bool))
        _, (out, u) = jax.lax.scan(step, loop, jax.random.split(k_steps, self.horizon))
        segments = {k: jnp.swapaxes(v, 0, 1) for k, v in out.items()}  # [R, H, ...]
        segments["hidden_policy"] = start["hidden_policy"]
        segments["hidden_value"] = start["hidden_value"]
        index = (state["ptr"] + jnp.arange(self.rollout_batch)) % self.capacity
        pool = {k: state["pool"][k].at[index].set(v) for k, v in segments.items()}
        valid = out["valid"]
        metrics = {
            "rollout_length": valid.sum(0).mean(),
            "uncertainty": (u * valid).sum() / jnp.maximum(valid.sum(), 1.0),
            "model_reward": (out["reward"] * valid).sum() / jnp.maximum(valid.sum(), 1.0),
        }
        state = {
            **state,
            "pool": pool,
            "ptr": (state["ptr"] + self.rollout_batch) % self.capacity,
            "size": jnp.minimum(state["size"] + self.rollout_batch, self.capacity),
        }
        return state, metrics

    def update(self, state: dict, batch: Batch, ctx: AddOnContext, rng: jax.Array):
        if self.tables is None:
            raise RuntimeError("maple-model: prepare() must run before training")
        state = jax.lax.cond(
            state["step"] % self.refresh_every == 0,
            lambda s: self.refresh(s, ctx),
            lambda s: s,
            state,
        )
        if self.uses_model:
            return super().update(state, batch, ctx, rng)
        return {**state, "step": state["step"] + 1}, {}

    def transform_batch(
        self, state: dict, batch: Batch, ctx: AddOnContext, rng: jax.Array
    ) -> Batch:
        if not self.uses_model:
            return batch
        b, h = batch.segments, self.horizon
        n_real = max(1, round(self.real_ratio * b))
        n_model = b - n_real
        keep = (np.arange(n_real) * b) // n_real  # evenly spread: sources keep their shares
        keep_rows = (keep[:, None] * h + np.arange(h)).reshape(-1)

        def take(key, x):
            return x[keep] if key in SEGMENT_LEVEL else x[keep_rows]

        real = batch.replace(
            **{
                f: getattr(batch, f)[keep_rows]
                for f in ("obs", "action", "reward", "next_obs", "terminal", "domain")
            },
            extras={k: take(k, v) for k, v in batch.extras.items()},
        )
        idx = jax.random.randint(rng, (n_model,), 0, jnp.maximum(state["size"], 1))
        seg = {k: v[idx] for k, v in state["pool"].items()}

        def flat(x):
            return x.reshape(n_model * h, *x.shape[2:])

        extras = {
            k: jnp.zeros((n_model * h, *v.shape[1:]), v.dtype)
            for k, v in real.extras.items()
            if not k.startswith("segment/")
        }
        extras.update(
            {
                SEGMENT_PREV_ACTION: flat(seg["prev_action"]),
                SEGMENT_VALID: flat(seg["valid"]),
                SEGMENT_HIDDEN_POLICY: seg["hidden_policy"],
                SEGMENT_HIDDEN_VALUE: seg["hidden_value"],
                SEGMENT_REWARD_RANGE: jnp.broadcast_to(
                    real.extras[SEGMENT_REWARD_RANGE][:1], (n_model, 2)
                ),
            }
        )
        model = Batch(
            obs=flat(seg["obs"]),
            action=flat(seg["action"]),
            reward=flat(seg["reward"]),
            next_obs=flat(seg["next_obs"]),
            terminal=flat(seg["terminal"]),
            domain=jnp.full((n_model * h,), MODEL, jnp.int32),
            extras=extras,
        )
        return Batch.concat([real, model])
