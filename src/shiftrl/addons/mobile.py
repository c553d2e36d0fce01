"""MOBILE: model-Bellman inconsistency penalty (Sun et al., ICML 2023), as an add-on.

Rollouts and the real / model batch mix are MOPO's (`addons/rollouts.py`) with no reward
penalty at rollout time. Instead, for every model row (s, a) of a batch, N next states are
sampled from each elite's Gaussian, a' ~ pi(.|s') and Q'(s', a') = min_i Q'_i (target
critics, no entropy term); the penalty is the standard deviation over the elites of the
mean over the N samples (unbiased, as torch.std):

    u(s, a) = std_k ( mean_n Q'(s'_kn, a'_kn) ),   y = r - beta * u + gamma (1 - d) Q'(s', a')

applied to model rows only. It enters here as a reward correction (stop-gradient) in
`transform_batch`, which equals the penalty in the TD target; MOBILE's clamp of the target
at 0 and its deterministic backup are SAC's `mobile` preset (`clip_target_at_zero`,
`backup_entropy=False`). The learner provides `target_value(state, obs, rng)`.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from shiftrl.addons.base import AddOnContext
from shiftrl.addons.rollouts import MOPO
from shiftrl.core.errors import ConfigError
from shiftrl.core.types import MODEL, Batch
from shiftrl.learners.base import Learner


@dataclass(frozen=True)
class MOBILE(MOPO):
    name: ClassVar[str] = "mobile"
    description: ClassVar[str] = (
        "model rollouts; model rows' rewards lowered by beta * std over elites of Q'(s', a')"
    )

    penalty: float = 0.0
    """MOPO's reward penalty at rollout time (MOBILE: none)."""
    beta: float = 1.0
    """Weight of the Bellman-inconsistency penalty (per task in MOBILE_PRESETS)."""
    num_samples: int = 10
    """Next states sampled from each elite per (s, a)."""

    def check(self, learner: Learner) -> None:
        super().check(learner)
        if self.beta < 0 or self.num_samples < 1:
            raise ConfigError("mobile: needs beta >= 0 and num_samples >= 1")
        if self.model_elites < 2 and not self.model_dir:
            raise ConfigError("mobile: the penalty is a std over elites; model_elites >= 2")
        if not hasattr(learner, "target_value"):
            raise ConfigError(
                f"mobile needs a learner with target critics and a stochastic policy "
                f"(sac, cql); {learner.name} has none"
            )

    def bind(self, learner: Learner) -> MOBILE:
        self.check(learner)
        bound = dataclasses.replace(self)
        clamps = bool(getattr(learner.config, "clip_target_at_zero", False))
        object.__setattr__(bound, "_learner_clamps", clamps)
        return bound

    def prepare(self, datasets: list[Any], preprocessor: Any, progress: bool = True) -> MOBILE:
        rewards = datasets[0].rewards
        if getattr(self, "_learner_clamps", False) and np.mean(rewards < 0) > 0.5:
            warnings.warn(
                "mobile: most rewards in the data are negative, but the TD target is clamped "
                "at 0 (MOBILE's setting for locomotion, where returns are positive); pass "
                "--set clip_target_at_zero=false for this task",
                stacklevel=2,
            )
        return super().prepare(datasets, preprocessor, progress)

    def inconsistency(self, state: dict, obs: jax.Array, action: jax.Array, ctx, rng):
        """u(s, a) for preprocessed rows (obs [B, d], action [B, a] in [-1, 1]) -> [B]."""
        from shiftrl.dynamics import predict

        p = self.prepared
        model = state["model"]
        raw_obs = obs * p.obs_std + p.obs_mean
        raw_action = p.act_center + p.act_half * jnp.clip(action, -1.0, 1.0)
        mean, logvar = predict(model, raw_obs, raw_action)
        mean, std = mean[model.elites, :, :-1], jnp.exp(0.5 * logvar[model.elites, :, :-1])
        k_noise, k_policy = jax.random.split(rng)
        shape = (mean.shape[0], self.num_samples, *mean.shape[1:])  # [K, N, B, d]
        next_raw = mean[:, None] + std[:, None] * jax.random.normal(k_noise, shape)
        next_obs = (next_raw - p.obs_mean) / p.obs_std
        q = ctx.learner.target_value(
            ctx.learner_state, next_obs.reshape(-1, shape[-1]), k_policy
        ).reshape(shape[:-1])
        return jnp.std(q.mean(axis=1), axis=0, ddof=1)

    def transform_batch(
        self, state: dict, batch: Batch, ctx: AddOnContext, rng: jax.Array
    ) -> Batch:
        k_mix, k_penalty = jax.random.split(rng)
        batch = super().transform_batch(state, batch, ctx, k_mix)
        u = jax.lax.stop_gradient(
            self.inconsistency(state, batch.obs, batch.action, ctx, k_penalty)
        )
        is_model = batch.domain == MODEL
        return batch.replace(reward=jnp.where(is_model, batch.reward - self.beta * u, batch.reward))


# MOBILE's per-task (horizon, beta, real_ratio): yihaosun1124/mobile configs (gym, D4RL v2).
MOBILE_PRESETS: dict[str, tuple[int, float, float]] = {
    "halfcheetah-random": (5, 0.5, 0.05),
    "halfcheetah-medium": (5, 0.5, 0.05),
    "halfcheetah-medium-replay": (5, 0.1, 0.05),
    "halfcheetah-medium-expert": (5, 1.0, 0.5),
    "hopper-random": (5, 5.0, 0.05),
    "hopper-medium": (5, 1.5, 0.05),
    "hopper-medium-replay": (5, 0.1, 0.05),
    "hopper-medium-expert": (5, 1.5, 0.05),
    "walker2d-random": (5, 2.0, 0.05),
    "walker2d-medium": (5, 0.5, 0.05),
    "walker2d-medium-replay": (1, 0.5, 0.05),
    "walker2d-medium-expert": (1, 1.5, 0.05),
    # NeoRL (official configs for Hopper/HalfCheetah/Walker2d-v3 low/medium/high), on the
    # project's NeoRL-like levels
    "halfcheetah-neorl-low": (5, 0.5, 0.05),
    "halfcheetah-neorl-medium": (5, 0.5, 0.05),
    "halfcheetah-neorl-high": (5, 1.5, 0.05),
    "hopper-neorl-low": (5, 2.5, 0.05),
    "hopper-neorl-medium": (5, 1.5, 0.05),
    "hopper-neorl-high": (5, 2.5, 0.05),
    "walker2d-neorl-low": (1, 2.5, 0.05),
    "walker2d-neorl-medium": (1, 2.5, 0.05),
    "walker2d-neorl-high": (1, 2.5, 0.5),
}

# The gym configs that turn SAC's automatic temperature off (alpha then fixed at 0.2).
MOBILE_FIXED_ALPHA: dict[str, float] = {"hopper-medium": 0.2, "hopper-medium-replay": 0.2}


def preset_settings(dataset_id: str) -> dict[str, Any]:
    """MOBILE's horizon, beta and real ratio for a dataset of our ID scheme."""
    from shiftrl.addons.spot import task_key

    key = task_key(dataset_id) or ""
    if key not in MOBILE_PRESETS:
        return {}
    horizon, beta, real_ratio = MOBILE_PRESETS[key]
    settings: dict[str, Any] = {"horizon": horizon, "beta": beta, "real_ratio": real_ratio}
    if key == "walker2d-medium":
        settings["model_max_epochs"] = 30  # the official config caps the dynamics here
    return settings


def learner_settings(dataset_id: str) -> dict[str, Any]:
    """Changes to SAC's `mobile` preset for a dataset: a fixed temperature where the official
    gym config turns automatic tuning off, and the soft backup on NeoRL, whose configs set
    `deterministic_backup=False` (their hopper `auto-alpha: False` is spelled with hyphens and
    never reaches argparse's `auto_alpha`, so tuning stays on there)."""
    from shiftrl.addons.spot import task_key

    key = task_key(dataset_id) or ""
    if key in MOBILE_FIXED_ALPHA:
        return fixed_alpha(MOBILE_FIXED_ALPHA[key])
    if "-neorl-" in key:
        return {"backup_entropy": True}
    return {}


def fixed_alpha(alpha: float) -> dict[str, Any]:
    """SAC settings for a constant temperature: log alpha stays at its initial 0 and the
    multiplier sets alpha itself."""
    return {"auto_entropy": False, "alpha_multiplier": alpha}
