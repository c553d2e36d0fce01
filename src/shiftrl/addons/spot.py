"""SPOT: Supported Policy Optimization for offline RL (Wu et al., NeurIPS 2022).

A conditional VAE estimates the behaviour density pi_beta(a|s); it is pretrained on the
data and frozen. The actor is then penalized for leaving the data's support:

    L_pi = -Q(s, pi(s)) / mean|Q(s, pi(s))|  +  lambda * (-log pi_beta(pi(s)|s))

with -log pi_beta approximated by the per-sample negative ELBO (the paper's default,
one posterior draw) or, as an option, by an importance-weighted estimate with L draws.
The add-on contributes the `support` term; the Q-normalized actor comes from the
learner (`--algo spot` is TD3+BC's `spot` preset: alpha 1, no BC term, actor dropout
0.1, plus this add-on). On other learners the term is added to their actor loss.

Fine-tuning online anneals lambda as SPOT's official `lambd_cool`:
lambda_t = lambda * max(0.2, 1 - t / 1e6), whatever the online phase's length
(`online_lambda_steps`; a 20k-step fine-tune ends at 0.98 lambda). CORL's port anneals over
the run's own online steps instead (`online_lambda_steps=None`), reaching 0.2 lambda at
the end of any fine-tune.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from shiftrl.addons.base import AddOn, AddOnContext
from shiftrl.core.errors import ConfigError
from shiftrl.core.types import Batch
from shiftrl.learners.base import LearnerSpec, objective
from shiftrl.nets.vae import VAE

# lambda per D4RL task in SPOT's configs/offline/*.yml (keyed by robot and level)
LAMBDA_PRESETS: dict[str, float] = {
    "halfcheetah-medium": 0.05,
    "halfcheetah-medium-replay": 0.05,
    "halfcheetah-medium-expert": 1.0,
    "hopper-medium": 0.1,
    "hopper-medium-replay": 0.1,
    "hopper-medium-expert": 0.2,
    "walker2d-medium": 0.2,
    "walker2d-medium-replay": 0.2,
    "walker2d-medium-expert": 0.5,
}

# learners whose actor loss exposes a differentiable policy action as "pi_action"
SUPPORTED = {"td3bc", "iql", "sac", "cql", "bc", "awr", "bcq", "bracp", "bear"}


def task_key(dataset_id: str) -> str | None:
    """'hopper-mass-2.0/medium-replay-v0' -> 'hopper-medium-replay' (robot and level)."""
    if "/" not in dataset_id:
        return None
    variant, level = dataset_id.split("/", 1)
    robot = variant.split("-")[0]
    level = level.rsplit("-v", 1)[0]
    return f"{robot}-{level}"


def preset_lambda(dataset_id: str, default: float = 0.1) -> float:
    """SPOT's lambda for a dataset of our ID scheme, by robot and level."""
    return LAMBDA_PRESETS.get(task_key(dataset_id) or "", default)


@dataclass(frozen=True)
class SPOT(AddOn):
    name: ClassVar[str] = "spot"
    description: ClassVar[str] = (
        "support constraint lambda * -log pi_beta(pi(s)|s) from a pretrained behaviour CVAE"
    )
    finetune_supported: ClassVar[bool] = True
    finetune_replay: ClassVar[str | None] = "all"

    lam: float = 0.1
    """Weight of the density penalty (per-dataset values in LAMBDA_PRESETS)."""
    kl_weight: float = 0.5
    """beta of the VAE loss, also used in the density estimate."""
    hidden: tuple[int, ...] = (750, 750)
    """Encoder and decoder hidden sizes."""
    latent_factor: int = 2
    """Latent dimension = latent_factor * action dim."""
    vae_lr: float = 1e-3
    """Adam learning rate of the VAE."""
    pretrain_steps: int = 100_000
    """VAE training steps before the learner starts (SPOT: 1e5); frozen afterwards."""
    train_alongside: bool = False
    """The VAE is frozen while the policy learns."""
    density: str = "elbo"
    """'elbo' (the paper's default) or 'iwae' (importance-weighted, `num_samples` draws)."""
    num_samples: int = 1
    """Posterior draws per estimate (ELBO averages them; IWAE's L)."""
    online_lambda_end: float = 0.2
    """Online: lambda_t = lambda * max(online_lambda_end, 1 - t / T)."""
    online_lambda_steps: int | None = 1_000_000
    """T of the online anneal: 1e6 (the official code, whatever the online length); None:
    the fine-tune's own online updates (CORL)."""

    def vae(self, act_dim: int) -> VAE:
        return VAE(act_dim, self.latent_factor * act_dim, self.hidden)

    def check(self, learner) -> None:
        if learner.name not in SUPPORTED:
            raise ConfigError(
                f"add-on spot needs a learner with a policy action; got {learner.name}"
            )
        if self.density not in ("elbo", "iwae"):
            raise ConfigError(f"spot.density must be 'elbo' or 'iwae', got '{self.density}'")
        if self.num_samples < 1:
            raise ConfigError("spot.num_samples must be at least 1")
        if self.online_lambda_steps is not None and self.online_lambda_steps <= 0:
            raise ConfigError("spot.online_lambda_steps must be positive (or none: the run's)")

    def init(self, rng: jax.Array, spec: LearnerSpec) -> dict:
        params = self.vae(spec.act_dim).init(rng, spec.obs_dim)
        return {
            "vae": TrainState.create(apply_fn=None, params=params, tx=optax.adam(self.vae_lr)),
            "lam": jnp.asarray(self.lam, jnp.float32),
        }

    # -- the density ----------------------------------------------------------------------
    def neg_log_density(self, params, obs: jax.Array, action: jax.Array, rng) -> jax.Array:
        """Per-sample estimate of -log pi_beta(a|s) (up to a constant for 'elbo')."""
        vae = self.vae(action.shape[-1])
        if self.density == "iwae":
            return -vae.iwae_log_prob(params, obs, action, rng, self.kl_weight, self.num_samples)
        return vae.elbo_loss(params, obs, action, rng, self.kl_weight, self.num_samples)

    # -- the add-on protocol ----------------------------------------------------------------
    def update(self, state: dict, batch: Batch, ctx: AddOnContext, rng: jax.Array):
        def loss_fn(params):
            vae = self.vae(batch.action.shape[-1])
            nelbo = vae.elbo_loss(params, batch.obs, batch.action, rng, self.kl_weight)
            return objective({"nelbo": nelbo}, {"nelbo": 1.0}, "vae")

        grads, metrics = jax.grad(loss_fn, has_aux=True)(state["vae"].params)
        return {**state, "vae": state["vae"].apply_gradients(grads=grads)}, metrics

    def actor_hook(self, state: dict, batch: Batch, terms, weights, rng):
        params = jax.lax.stop_gradient(state["vae"].params)
        support = self.neg_log_density(params, batch.obs, terms["pi_action"], rng)
        return {**terms, "support": support}, {**weights, "support": state["lam"]}

    def online_step(self, state: dict, t: jax.Array, total: int) -> dict:
        horizon = self.online_lambda_steps or total
        frac = jnp.maximum(self.online_lambda_end, 1.0 - t / max(horizon, 1))
        return {**state, "lam": self.lam * frac}
