"""MOPO: model-based offline policy optimization (Yu et al., NeurIPS 2020), as an add-on.

Model rollouts run inside the compiled train loop, on the add-on path:

- `prepare` trains the dynamics ensemble on the target data (or reuses the cached one, or
  loads `model_dir`), outside the train loop and before it (`shiftrl.dynamics`);
- `update`, every `rollout_every` steps (step 0 included, a `lax.cond`): `rollout_batch`
  start states drawn from the target data roll out `horizon` steps with the learner's
  exploration policy (SAC samples) through the ensemble, one random elite per row and
  step (`dynamics.sample_step`); a row stops after the environment's termination function
  fires. Rewards are penalized r - penalty * max_k ||sigma_k||_2 (MOPO's aleatoric
  uncertainty, all members). Live rows are written into a device-side ring buffer of
  rollout_batch * horizon * retain_epochs transitions. One model transition per row is
  the `model_step` hook, which a transition filter overrides (MOREC, addons/morec.py);
- `transform_batch` keeps round(real_ratio * B) of the batch's dataset rows (evenly spread,
  so target and source rows keep their shares) and fills the rest with transitions drawn
  uniformly from the buffer, labelled `MODEL`, so batch shapes stay static and other
  add-ons see which rows are model data (DARA corrects only `SOURCE` rows).

The model works in raw environment units; the learner's batch is preprocessed (normalized
states, actions in [-1, 1], scaled rewards), so rollouts convert on the way in and out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from shiftrl.addons.base import AddOn, AddOnContext
from shiftrl.core.errors import ConfigError
from shiftrl.core.jax_utils import nan_like
from shiftrl.core.types import MODEL, Batch
from shiftrl.dynamics.ensemble import UNCERTAINTY_MODES
from shiftrl.learners.base import Learner, LearnerSpec

BUFFER_FIELDS = ("obs", "action", "reward", "next_obs", "terminal")
ELITE_PER = ("step", "trajectory")


@dataclass(frozen=True)
class Prepared:
    """What `prepare` resolved from the run's data: the model and unit conversions."""

    model: Any
    obs_mean: np.ndarray
    obs_std: np.ndarray
    act_center: np.ndarray
    act_half: np.ndarray
    reward_scale: float
    reward_bias: float
    termination: str
    record: dict


@dataclass(frozen=True)
class MOPO(AddOn):
    name: ClassVar[str] = "mopo"
    description: ClassVar[str] = (
        "model rollouts from a dynamics ensemble, rewards r - penalty * max_k ||sigma_k||"
    )

    penalty: float = 1.0
    """lambda: weight of the uncertainty penalty on model rewards (per task in MOPO_PRESETS)."""
    uncertainty: str = "aleatoric"
    """MOPO's max_k ||sigma_k|| ("aleatoric"), or OfflineRL-Kit's alternatives on the members'
    disagreement, "pairwise-diff" and "ensemble-std" (`shiftrl.dynamics.uncertainty`)."""
    horizon: int = 5
    """h: model steps per rollout."""
    rollout_batch: int = 50_000
    """Start states per rollout round."""
    rollout_every: int = 1000
    """Train steps between rollout rounds (the first at step 0)."""
    retain_epochs: int = 5
    """Rollout rounds the buffer holds (capacity rollout_batch * horizon * retain_epochs)."""
    real_ratio: float = 0.05
    """Fraction of each batch from the dataset; the rest comes from the model buffer."""
    model_dir: str = ""
    """A model saved by `shiftrl dynamics train` ("" : train or reuse one on the target data)."""
    model_members: int = 7
    model_elites: int = 5
    model_hidden: tuple[int, ...] = (200, 200, 200, 200)
    model_max_epochs: int = 0
    """Cap on the ensemble's training epochs (0: early stopping only, as the papers)."""
    model_seed: int = 0
    model_data: str = "target"
    """What the ensemble is trained on: "target" data, or "all" (target and sources; with
    few target episodes, as DARA's 1T+10S, the sources carry most of the coverage)."""
    termination: str = ""
    """Robot whose termination function ends rollouts ("" : from the data's environment;
    "never" for data from an environment that only ends by time limit)."""
    elite_per: str = "step"
    """Which elite generates a transition: a random one per row and "step" (MOPO), or one
    drawn per rollout and kept for its whole "trajectory" (MAPLE's PyTorch code)."""

    def check(self, learner: Learner) -> None:
        checks = [
            (self.penalty >= 0, "penalty must be >= 0"),
            (self.horizon >= 1, "horizon must be at least 1"),
            (self.rollout_batch >= 1, "rollout_batch must be positive"),
            (self.rollout_every >= 1, "rollout_every must be positive"),
            (self.retain_epochs >= 1, "retain_epochs must be positive"),
            (0.0 < self.real_ratio < 1.0, "real_ratio must be in (0, 1)"),
            (self.model_max_epochs >= 0, "model_max_epochs must be >= 0"),
            (self.model_data in ("target", "all"), "model_data must be 'target' or 'all'"),
            (self.elite_per in ELITE_PER, f"elite_per must be one of {', '.join(ELITE_PER)}"),
            (
                self.uncertainty in UNCERTAINTY_MODES,
                f"uncertainty must be one of {', '.join(UNCERTAINTY_MODES)}",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"mopo: {msg}")
        if not learner.uses_rewards:
            raise ConfigError(f"mopo generates rewarded transitions; {learner.name} ignores them")
        if type(learner).explore is Learner.explore:
            raise ConfigError(f"mopo rolls out a stochastic policy; {learner.name} has none")

    # -- the dynamics model -------------------------------------------------------------------
    @property
    def model_config(self):
        from shiftrl.dynamics import EnsembleConfig

        return EnsembleConfig(
            members=self.model_members,
            elites=self.model_elites,
            hidden=tuple(self.model_hidden),
            max_epochs=self.model_max_epochs or None,
        )

    @property
    def capacity(self) -> int:
        return self.rollout_batch * self.horizon * self.retain_epochs

    @property
    def prepared(self) -> Prepared | None:
        return getattr(self, "_prepared", None)

    def prepared_records(self) -> dict[str, dict]:
        ready = self.prepared
        return {} if ready is None else {"dynamics": ready.record}

    def prepare(self, datasets: list[Any], preprocessor: Any, progress: bool = True) -> MOPO:
        from shiftrl.dynamics import fit_dynamics, load_model, termination_fn
        from shiftrl.dynamics.termination import robot_of_env

        target = datasets[0]
        if self.model_dir:
            model, record = load_model(self.model_dir)
            if (model.obs_dim, model.act_dim) != (target.obs_dim, target.act_dim):
                raise ConfigError(
                    f"mopo: the model in {self.model_dir} is for obs dim {model.obs_dim} / "
                    f"act dim {model.act_dim}; the data has {target.obs_dim} / {target.act_dim}"
                )
        else:
            from shiftrl.data.dataset import concatenate

            fit_on = concatenate(list(datasets)) if self.model_data == "all" else target
            model, record = fit_dynamics(
                fit_on, self.model_config, seed=self.model_seed, progress=progress
            )
        robot = self.termination or robot_of_env(target.metadata.env_id or "") or ""
        if not robot:
            raise ConfigError(
                "mopo: the data does not name a known environment, so rollouts cannot know "
                "when an episode ends; set mopo.termination=<robot> (or never)"
            )
        termination_fn(robot)  # an unknown name is a user error now, not at trace time
        low, high = preprocessor.action_low, preprocessor.action_high
        ready = dataclasses.replace(self)
        object.__setattr__(
            ready,
            "_prepared",
            Prepared(
                model=model,
                obs_mean=np.asarray(preprocessor.obs_mean, np.float32),
                obs_std=np.asarray(preprocessor.obs_std, np.float32),
                act_center=np.asarray((high + low) / 2, np.float32),
                act_half=np.asarray((high - low) / 2, np.float32),
                reward_scale=float(preprocessor.reward_scale),
                reward_bias=float(preprocessor.reward_bias),
                termination=robot,
                record=record,
            ),
        )
        return ready

    # -- state ------------------------------------------------------------------------------
    def init(self, rng: jax.Array, spec: LearnerSpec) -> dict:
        from shiftrl.dynamics import load_model
        from shiftrl.dynamics.ensemble import DynamicsModel, init_params

        if self.prepared is not None:
            model = self.prepared.model
        elif self.model_dir:  # a template to restore a checkpoint into
            model = load_model(self.model_dir)[0]
        else:
            config = self.model_config
            in_dim = spec.obs_dim + spec.act_dim
            model = DynamicsModel(
                params=init_params(config, spec.obs_dim, spec.act_dim, rng),
                input_mean=jnp.zeros(in_dim),
                input_std=jnp.ones(in_dim),
                elites=jnp.arange(config.elites, dtype=jnp.int32),
                holdout_mse=jnp.zeros(config.members),
                config=config,
                obs_dim=spec.obs_dim,
                act_dim=spec.act_dim,
            )
        c, d, a = self.capacity, spec.obs_dim, spec.act_dim
        buffer = {
            "obs": jnp.zeros((c, d)),
            "action": jnp.zeros((c, a)),
            "reward": jnp.zeros(c),
            "next_obs": jnp.zeros((c, d)),
            "terminal": jnp.zeros(c),
        }
        zero = jnp.zeros((), jnp.int32)
        return {"model": model, "buffer": buffer, "ptr": zero, "size": zero, "step": zero}

    # -- rollouts ---------------------------------------------------------------------------
    def model_step(
        self,
        state: dict,
        raw_obs: jax.Array,
        raw_action: jax.Array,
        rng: jax.Array,
        members: jax.Array | None = None,
    ):
        """One model transition per row, in raw units: (next_obs [B, d], reward [B],
        uncertainty [B], stop [B] bool: the rollout ends here, row kept and flagged terminal,
        info: per-row arrays logged as their mean over live rows). MOPO: a random elite's
        sample (or row i's elite `members[i]`, `elite_per="trajectory"`), never stops; a
        transition filter (MOREC) overrides this."""
        from shiftrl.dynamics import sample_step

        next_obs, reward, uncertainty = sample_step(
            state["model"], raw_obs, raw_action, rng, self.uncertainty, members
        )
        return next_obs, reward, uncertainty, jnp.zeros(raw_obs.shape[0], bool), {}

    def rollout(self, state: dict, ctx: AddOnContext, rng: jax.Array) -> tuple[dict, dict]:
        """One round: `rollout_batch` rollouts of `horizon` steps, live rows into the buffer."""
        from shiftrl.dynamics import termination_fn

        p = self.prepared
        if p is None:
            raise RuntimeError("mopo: prepare() must run before training")
        done_fn = termination_fn(p.termination)
        data = ctx.data[0]
        k_start, k_steps = jax.random.split(rng)
        rows = jax.random.randint(k_start, (self.rollout_batch,), 0, data["obs"].shape[0])
        members = self.trajectory_members(state["model"], jax.random.fold_in(k_start, 1))

        def step(carry, key):
            obs, alive = carry
            k_act, k_model = jax.random.split(key)
            action = ctx.learner.explore(ctx.learner_state, obs, k_act)
            raw_obs = obs * p.obs_std + p.obs_mean
            raw_action = p.act_center + p.act_half * jnp.clip(action, -1.0, 1.0)
            raw_next, raw_reward, uncertainty, stop, info = self.model_step(
                state, raw_obs, raw_action, k_model, members
            )
            done = done_fn(raw_obs, raw_action, raw_next) | stop
            penalized = raw_reward - self.penalty * uncertainty
            next_obs = (raw_next - p.obs_mean) / p.obs_std
            out = {
                "obs": obs,
                "action": action,
                "reward": penalized * p.reward_scale + p.reward_bias,
                "next_obs": next_obs,
                "terminal": done.astype(jnp.float32),
            }
            return (next_obs, alive & ~done), (out, alive, uncertainty, info)

        start = (data["obs"][rows], jnp.ones(self.rollout_batch, bool))
        _, (out, alive, uncertainty, info) = jax.lax.scan(
            step, start, jax.random.split(k_steps, self.horizon)
        )
        state = write_rows(state, out, alive, self.capacity)
        live = alive.astype(jnp.float32)
        per_live = {"uncertainty": uncertainty, "model_reward": out["reward"], **info}
        metrics = {
            "rollout_length": live.sum(0).mean(),
            **{k: (v * live).sum() / jnp.maximum(live.sum(), 1.0) for k, v in per_live.items()},
        }
        return state, metrics

    def trajectory_members(self, model: Any, rng: jax.Array) -> jax.Array | None:
        """[rollout_batch] elites, one per rollout (`elite_per="trajectory"`), else None."""
        from shiftrl.dynamics.ensemble import random_elites

        if self.elite_per != "trajectory":
            return None
        return random_elites(model, rng, self.rollout_batch)

    def update(self, state: dict, batch: Batch, ctx: AddOnContext, rng: jax.Array):
        def skip(state):  # NaN metrics shaped as a round's (nanmean when logged)
            return state, nan_like(jax.eval_shape(lambda s: self.rollout(s, ctx, rng)[1], state))

        state, metrics = jax.lax.cond(
            state["step"] % self.rollout_every == 0,
            lambda s: self.rollout(s, ctx, rng),
            skip,
            state,
        )
        state = {**state, "step": state["step"] + 1}
        return state, {**metrics, "buffer_size": state["size"].astype(jnp.float32)}

    def transform_batch(
        self, state: dict, batch: Batch, ctx: AddOnContext, rng: jax.Array
    ) -> Batch:
        n_real = max(1, round(self.real_ratio * batch.size))
        n_model = batch.size - n_real
        idx = jax.random.randint(rng, (n_model,), 0, jnp.maximum(state["size"], 1))
        rows = {k: v[idx] for k, v in state["buffer"].items()}
        # real rows spread evenly over the batch, so target and source rows keep their shares
        keep = (np.arange(n_real) * batch.size) // n_real
        real = jax.tree.map(lambda x: x[keep], batch)
        extras = {k: jnp.zeros((n_model, *v.shape[1:]), v.dtype) for k, v in real.extras.items()}
        model_rows = Batch(**rows, domain=jnp.full((n_model,), MODEL, jnp.int32), extras=extras)
        return Batch.concat([real, model_rows])


def write_rows(state: dict, rows: dict, alive: jax.Array, capacity: int) -> dict:
    """Append the rows where `alive` ([H, R]) to the ring buffer, oldest overwritten first."""
    flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in rows.items()}
    keep = alive.reshape(-1)
    offset = jnp.cumsum(keep) - 1
    index = jnp.where(keep, (state["ptr"] + offset) % capacity, capacity)  # capacity: dropped
    buffer = {
        k: state["buffer"][k].at[index].set(flat[k].astype(state["buffer"][k].dtype), mode="drop")
        for k in BUFFER_FIELDS
    }
    written = keep.sum().astype(jnp.int32)
    return {
        **state,
        "buffer": buffer,
        "ptr": (state["ptr"] + written) % capacity,
        "size": jnp.minimum(state["size"] + written, capacity),
    }


# MOPO's per-task (horizon, penalty): tianheyu927/mopo examples/config/d4rl (D4RL v0).
MOPO_PRESETS: dict[str, tuple[int, float]] = {
    "halfcheetah-random": (5, 0.5),
    "halfcheetah-medium": (1, 1.0),
    "halfcheetah-medium-replay": (5, 1.0),
    "halfcheetah-medium-expert": (5, 5.0),
    "hopper-random": (5, 1.0),
    "hopper-medium": (5, 5.0),
    "hopper-medium-replay": (5, 1.0),
    "hopper-medium-expert": (5, 1.0),
    "walker2d-random": (1, 1.0),
    "walker2d-medium": (5, 5.0),
    "walker2d-medium-replay": (1, 1.0),
    "walker2d-medium-expert": (1, 2.0),
}


def preset_settings(dataset_id: str) -> dict[str, Any]:
    """MOPO's horizon and penalty for a dataset of our ID scheme (robot and level)."""
    from shiftrl.addons.spot import task_key

    key = task_key(dataset_id) or ""
    if key not in MOPO_PRESETS:
        return {}
    horizon, penalty = MOPO_PRESETS[key]
    return {"horizon": horizon, "penalty": penalty}
