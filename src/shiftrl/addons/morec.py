"""MOREC (Luo, Xu, Cao & Yu, ICLR 2024): a learned dynamics reward as a transition filter on
MOPO's and MOBILE's model rollouts.

The filter is MOPO's `model_step` hook (addons/rollouts.py), nothing else of the rollout
path is copied: for each (s, a) every elite draws `resamples` Gaussian samples of
(s', r) (5 elites x 2 = 10 candidates, as the released code), clipped to +-`state_clip`;
each candidate is scored by the dynamics reward r_D(s, a, s') (`shiftrl.dynamics.reward`),
and one is chosen by argmax ("select") or by sampling softmax(r_D / kappa) ("softmax").
When the chosen candidate's r_D is below `threshold` (0.6) the rollout ends there: the
transition is kept and flagged terminal (so its TD target does not bootstrap).

- MOREC-MOPO (`morec-mopo`): MOPO's uncertainty penalty still applies to the model rewards.
- MOREC-MOBILE (`morec-mobile`): no reward penalty at rollout time; MOBILE's
  Bellman-inconsistency penalty on model rows, in the critic target.

`prepare` learns the dynamics reward on the target data (or reuses the cached one, or
loads `reward_dir`) after the dynamics ensemble. Logged per rollout round (addon metrics):
`dynamics_reward` (mean r_D of the chosen candidates), `filter_stop` (share of live
transitions where the threshold ended the rollout) and `filter_ended` (share of rollouts
the threshold ended), next to MOPO's `rollout_length`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from shiftrl.addons.mobile import MOBILE, fixed_alpha
from shiftrl.addons.rollouts import MOPO
from shiftrl.core.errors import ConfigError
from shiftrl.learners.base import Learner, LearnerSpec


@dataclass(frozen=True)
class TransitionFilter:
    """MOREC's settings and filter; mixed into MOPO / MOBILE (see MORECMOPO below)."""

    selection: str = "softmax"
    """"select": the candidate with the highest r_D; "softmax": sampled from softmax(r_D / kappa)."""
    kappa: float = 0.1
    resamples: int = 2
    """Gaussian samples per elite (candidates = elites x resamples)."""
    threshold: float = 0.6
    """A rollout ends at a chosen candidate with r_D below this (kept, flagged terminal)."""
    state_clip: float = 25.0
    """Candidates (next state and reward) are clipped to +- this (D4RL: 25; NeoRL: 1e6)."""
    use_every: int = 1
    """Snapshots merged: the newest and every use_every-th back (MOREC-MOPO 1 -> 40,
    MOREC-MOBILE 4 -> 10)."""
    reward_dir: str = ""
    """A dynamics reward saved by `shiftrl dynamics-reward train` ("": learn or reuse one)."""
    reward_iterations: int = 10_000
    reward_snapshot_every: int = 250
    reward_hidden: tuple[int, ...] = ()
    """Hidden widths of the reward's networks (encoders keep their 64 / 16 outputs); ():
    the released sizes."""
    reward_seed: int = 0

    @property
    def reward_config(self):
        from shiftrl.dynamics.reward import RewardConfig

        sizes: dict[str, Any] = {}
        if self.reward_hidden:
            h = tuple(self.reward_hidden)
            sizes = {
                "state_encoder": (*h, 64),
                "delta_encoder": (*h, 16),
                "discriminator": h,
                "generator": h,
            }
        return RewardConfig(
            iterations=self.reward_iterations, snapshot_every=self.reward_snapshot_every, **sizes
        )

    def check(self, learner: Learner) -> None:
        super().check(learner)  # type: ignore[misc]
        from shiftrl.dynamics.reward import SELECTION_RULES

        checks = [
            (self.selection in SELECTION_RULES, f"selection must be one of {SELECTION_RULES}"),
            (self.kappa > 0, "kappa must be positive"),
            (self.resamples >= 1, "resamples must be at least 1"),
            (self.state_clip > 0, "state_clip must be positive"),
            (self.use_every >= 1, "use_every must be at least 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"{self.name}: {msg}")  # type: ignore[attr-defined]
        self.reward_config  # noqa: B018 (its settings are checked on construction)

    def prepare(self, datasets: list[Any], preprocessor: Any, progress: bool = True):
        from shiftrl.dynamics.reward import fit_dynamics_reward, load_reward

        ready = super().prepare(datasets, preprocessor, progress)  # type: ignore[misc]
        target = datasets[0]
        if self.reward_dir:
            reward, record = load_reward(self.reward_dir)
            if (reward.obs_dim, reward.act_dim) != (target.obs_dim, target.act_dim):
                raise ConfigError(
                    f"{self.name}: the dynamics reward in {self.reward_dir} is for obs dim "  # type: ignore[attr-defined]
                    f"{reward.obs_dim} / act dim {reward.act_dim}; the data has "
                    f"{target.obs_dim} / {target.act_dim}"
                )
        else:
            reward, record = fit_dynamics_reward(
                target, self.reward_config, seed=self.reward_seed, progress=progress
            )
        object.__setattr__(ready, "_reward", reward)
        object.__setattr__(ready, "_reward_record", record)
        return ready

    def prepared_records(self) -> dict[str, dict]:
        records = super().prepared_records()  # type: ignore[misc]
        reward_record = getattr(self, "_reward_record", None)
        return records if reward_record is None else {**records, "dynamics_reward": reward_record}

    def init(self, rng: jax.Array, spec: LearnerSpec) -> dict:
        state = super().init(rng, spec)  # type: ignore[misc]
        reward = getattr(self, "_reward", None)
        if reward is None:
            if self.reward_dir:
                from shiftrl.dynamics.reward import load_reward

                reward = load_reward(self.reward_dir)[0]
            else:  # a template to restore a checkpoint into
                reward = template_reward(self.reward_config, spec, rng)
        return {**state, "reward_model": reward}

    def model_step(
        self,
        state: dict,
        raw_obs: jax.Array,
        raw_action: jax.Array,
        rng: jax.Array,
        members: jax.Array | None = None,
    ):
        # MOREC scores every elite's candidates, so per-trajectory `members` do not apply
        from shiftrl.dynamics import predict, uncertainty
        from shiftrl.dynamics.reward import dynamics_reward, select_candidates

        model = state["model"]
        k_noise, k_pick = jax.random.split(rng)
        mean, logvar = predict(model, raw_obs, raw_action)  # [E, B, d + 1]
        elite_mean, elite_std = mean[model.elites], jnp.exp(0.5 * logvar[model.elites])
        noise = jax.random.normal(k_noise, (self.resamples, *elite_mean.shape))
        candidates = (elite_mean + elite_std * noise).reshape(-1, *elite_mean.shape[1:])
        candidates = jnp.clip(candidates, -self.state_clip, self.state_clip)  # [C, B, d + 1]
        scores = dynamics_reward(
            state["reward_model"],
            raw_obs[None],
            raw_action[None],
            candidates[..., :-1],
            use_every=self.use_every,
        )  # [C, B]
        pick = select_candidates(scores, self.selection, k_pick, self.kappa)
        rows = jnp.arange(raw_obs.shape[0])
        chosen, chosen_reward = candidates[pick, rows], scores[pick, rows]
        stop = chosen_reward < self.threshold
        info = {"dynamics_reward": chosen_reward, "filter_stop": stop.astype(jnp.float32)}
        u = uncertainty(mean, logvar, self.uncertainty)  # type: ignore[attr-defined]
        return chosen[:, :-1], chosen[:, -1], u, stop, info

    def rollout(self, state: dict, ctx, rng: jax.Array):
        state, metrics = super().rollout(state, ctx, rng)  # type: ignore[misc]
        # (stops / live transitions) x (live transitions / rollouts) = stopped rollouts share
        metrics["filter_ended"] = metrics["filter_stop"] * metrics["rollout_length"]
        return state, metrics


def template_reward(config, spec: LearnerSpec, rng: jax.Array):
    """A zero dynamics reward shaped as one learned with `config` (checkpoint restores)."""
    from shiftrl.dynamics.reward.model import DynamicsReward, Scaling, init_discriminator

    k = min(config.ensemble_size, -(-config.iterations // config.snapshot_every))
    one = init_discriminator(rng, config, spec.obs_dim, spec.act_dim)
    zeros = lambda n: jnp.zeros(n, jnp.float32)  # noqa: E731
    return DynamicsReward(
        snapshots=jax.tree.map(lambda x: jnp.zeros((k, *x.shape), x.dtype), one),
        expert=zeros(k),
        learner=zeros(k),
        scaling=Scaling(
            zeros(spec.obs_dim),
            zeros(spec.obs_dim),
            zeros(spec.act_dim),
            zeros(spec.act_dim),
            config.obs_scale,
        ),  # fmt: skip
        config=config,
        obs_dim=spec.obs_dim,
        act_dim=spec.act_dim,
    )


@dataclass(frozen=True)
class MORECMOPO(TransitionFilter, MOPO):
    name: ClassVar[str] = "morec-mopo"
    description: ClassVar[str] = (
        "MOPO's rollouts filtered by a learned dynamics reward (one of 10 candidates by "
        "argmax or softmax of r_D; rollouts of 100 ended below r_D 0.6)"
    )
    horizon: int = 100
    rollout_batch: int = 2000
    penalty: float = 0.1


@dataclass(frozen=True)
class MORECMOBILE(TransitionFilter, MOBILE):
    name: ClassVar[str] = "morec-mobile"
    description: ClassVar[str] = (
        "MOBILE's rollouts filtered by a learned dynamics reward (softmax over 10 "
        "candidates, ended below r_D 0.6)"
    )
    horizon: int = 100
    rollout_batch: int = 2000
    use_every: int = 4


# MOREC-MOPO's per-task (penalty, selection): polixir/morec generate_tmuxp_morec_mopo.py
MOREC_MOPO_PRESETS: dict[str, tuple[float, str]] = {
    "halfcheetah-random": (0.5, "softmax"),
    "halfcheetah-medium": (0.5, "select"),
    "halfcheetah-medium-replay": (0.5, "softmax"),
    "halfcheetah-medium-expert": (0.5, "select"),
    "hopper-random": (10.0, "select"),
    "hopper-medium": (15.0, "softmax"),
    "hopper-medium-replay": (15.0, "softmax"),
    "hopper-medium-expert": (15.0, "softmax"),
    "walker2d-random": (1.0, "softmax"),
    "walker2d-medium": (0.5, "softmax"),
    "walker2d-medium-replay": (0.25, "select"),
    "walker2d-medium-expert": (1.0, "softmax"),
    # NeoRL (the released script's Hopper/HalfCheetah/Walker2d-v3-L/M/H rows)
    "halfcheetah-neorl-low": (2.0, "select"),
    "halfcheetah-neorl-medium": (2.0, "select"),
    "halfcheetah-neorl-high": (2.0, "softmax"),
    "hopper-neorl-low": (2.0, "select"),
    "hopper-neorl-medium": (20.0, "select"),
    "hopper-neorl-high": (20.0, "select"),
    "walker2d-neorl-low": (2.0, "softmax"),
    "walker2d-neorl-medium": (2.0, "softmax"),
    "walker2d-neorl-high": (2.0, "select"),
}

# MOREC-MOBILE's per-task beta (real ratio 0.5 where noted): generate_tmuxp_morec_mobile.py
MOREC_MOBILE_PRESETS: dict[str, tuple[float, float]] = {
    "halfcheetah-random": (0.25, 0.05),
    "halfcheetah-medium": (0.25, 0.05),
    "halfcheetah-medium-replay": (0.25, 0.05),
    "halfcheetah-medium-expert": (1.0, 0.5),
    "hopper-random": (7.5, 0.05),
    "hopper-medium": (1.5, 0.05),
    "hopper-medium-replay": (0.5, 0.05),
    "hopper-medium-expert": (1.5, 0.05),
    "walker2d-random": (1.0, 0.05),
    "walker2d-medium": (0.75, 0.05),
    "walker2d-medium-replay": (0.1, 0.05),
    "walker2d-medium-expert": (0.25, 0.05),
    "halfcheetah-neorl-low": (1.0, 0.05),
    "halfcheetah-neorl-medium": (0.5, 0.05),
    "halfcheetah-neorl-high": (0.75, 0.05),
    "hopper-neorl-low": (0.5, 0.05),
    "hopper-neorl-medium": (2.0, 0.05),
    "hopper-neorl-high": (2.5, 0.05),
    "walker2d-neorl-low": (0.75, 0.05),
    "walker2d-neorl-medium": (0.25, 0.05),
    "walker2d-neorl-high": (0.1, 0.5),
}

# Real ratio 0.5 in the released MOREC-MOPO rows (0.05 elsewhere).
MOREC_MOPO_REAL_RATIO: dict[str, float] = {"hopper-neorl-medium": 0.5, "hopper-neorl-high": 0.5}

# Changes to SAC's preset in released rows: fixed temperatures where automatic tuning is off
# (MOREC-MOPO's Hopper-v3-H at MOPO's default alpha 0.2 and Hopper-v3-L at 0.1; MOREC-MOBILE's
# Hopper-v3-H at its alpha 0.1) and MOREC-MOBILE's deterministic backup on hopper-random.
MOREC_LEARNER_SETTINGS: dict[tuple[str, str], dict[str, Any]] = {
    ("morec-mopo", "hopper-neorl-high"): fixed_alpha(0.2),
    ("morec-mopo", "hopper-neorl-low"): fixed_alpha(0.1),
    ("morec-mobile", "hopper-neorl-high"): fixed_alpha(0.1),
    ("morec-mobile", "hopper-random"): {"backup_entropy": False},
}

NEORL_STATE_CLIP = 1e6
"""Candidate clip on NeoRL (x-position in the state: D4RL's 25 would cut it)."""


def preset_settings(algo: str, dataset_id: str) -> dict[str, Any]:
    """MOREC's per-task settings ("morec-mopo" or "morec-mobile") for a dataset ID."""
    from shiftrl.addons.spot import task_key

    key = task_key(dataset_id) or ""
    settings: dict[str, Any] = {}
    if algo == "morec-mopo" and key in MOREC_MOPO_PRESETS:
        penalty, selection = MOREC_MOPO_PRESETS[key]
        settings = {"penalty": penalty, "selection": selection}
        if key in MOREC_MOPO_REAL_RATIO:
            settings["real_ratio"] = MOREC_MOPO_REAL_RATIO[key]
    if algo == "morec-mobile" and key in MOREC_MOBILE_PRESETS:
        beta, real_ratio = MOREC_MOBILE_PRESETS[key]
        settings = {"beta": beta, "real_ratio": real_ratio}
        if key == "walker2d-medium":
            settings["model_max_epochs"] = 30
    if "-neorl-" in key:
        settings["state_clip"] = NEORL_STATE_CLIP
    return settings


def learner_settings(algo: str, dataset_id: str) -> dict[str, Any]:
    """Changes to SAC's preset for a MOREC recipe on a dataset (MOREC_LEARNER_SETTINGS)."""
    from shiftrl.addons.spot import task_key

    return dict(MOREC_LEARNER_SETTINGS.get((algo, task_key(dataset_id) or ""), {}))


__all__ = ["MORECMOBILE", "MORECMOPO", "TransitionFilter", "learner_settings", "preset_settings"]
