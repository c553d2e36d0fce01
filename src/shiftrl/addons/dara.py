"""DARA: Dynamics-Aware Reward Augmentation in Offline RL (Liu et al., ICLR 2022).

Two binary domain classifiers, on (s, a, s') and on (s, a), separate source from target
transitions. With raw logits l(x) = log q(source|x) / q(target|x) (binary cross-entropy
on logits: no softmax applied twice, unlike ODRL's implementation),

    delta_r(s, a, s') = l_sas(s, a, s') - l_sa(s, a)  ~  log p_source(s'|s, a) / p_target(s'|s, a)

and source rewards become r - eta * clip(delta_r, -c, c); target rewards are untouched.
Training inputs get Gaussian noise (std 1.0, DARC's trick against over-confident
classifiers). The classifiers train alongside the learner (one step per learner step,
as in ODRL) or beforehand and frozen (`pretrain_steps > 0`, `train_alongside=False`).
The correction is computed on the learner's inputs (normalized states) and added in the
learner's reward units, without gradients into the learner.
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
from shiftrl.core.types import SOURCE, Batch
from shiftrl.learners.base import Learner, LearnerSpec
from shiftrl.nets import MLP


def bce_with_logits(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-sample binary cross-entropy on raw logits (numerically stable)."""
    return jnp.maximum(logits, 0) - logits * labels + jnp.log1p(jnp.exp(-jnp.abs(logits)))


@dataclass(frozen=True)
class DARA(AddOn):
    name: ClassVar[str] = "dara"
    description: ClassVar[str] = (
        "reward correction r - eta * delta_r on source data from domain classifiers"
    )

    eta: float = 0.1
    """Weight of the correction (0.1 in ODRL's DARA configs)."""
    clip: float = 10.0
    """delta_r is clipped to [-clip, clip] (ODRL, "based on the DARA paper")."""
    noise_std: float = 1.0
    """Gaussian noise on classifier training inputs (DARC)."""
    hidden: tuple[int, ...] = (256, 256)
    lr: float = 3e-4
    pretrain_steps: int = 0
    """Classifier steps before the learner starts (0: train alongside only)."""
    train_alongside: bool = True
    """Keep training the classifiers during learning (False freezes them after pretraining)."""

    needs_sources: ClassVar[bool] = True

    def check(self, learner: Learner) -> None:
        if not learner.uses_rewards:
            raise ConfigError(
                f"dara corrects source rewards, which {learner.name} does not use; pick a "
                "learner that learns from rewards (td3bc, iql, cql, bcq, bear, bracp, awr)"
            )
        if self.eta < 0 or self.clip <= 0 or self.noise_std < 0:
            raise ConfigError("dara needs eta >= 0, clip > 0 and noise_std >= 0")

    @property
    def _net(self) -> MLP:
        return MLP(self.hidden, 1)

    def init(self, rng: jax.Array, spec: LearnerSpec) -> dict:
        k_sas, k_sa = jax.random.split(rng)
        d_s, d_a = spec.obs_dim, spec.act_dim
        tx = optax.adam(self.lr)
        sas = self._net.init(k_sas, jnp.zeros((1, 2 * d_s + d_a)))["params"]
        sa = self._net.init(k_sa, jnp.zeros((1, d_s + d_a)))["params"]
        return {
            "sas": TrainState.create(apply_fn=None, params=sas, tx=tx),
            "sa": TrainState.create(apply_fn=None, params=sa, tx=tx),
        }

    # -- classifiers ----------------------------------------------------------------------
    def logits(self, params: dict, batch: Batch) -> tuple[jax.Array, jax.Array]:
        """(l_sas, l_sa): log-odds of `source` for each transition."""
        sas = jnp.concatenate([batch.obs, batch.action, batch.next_obs], -1)
        sa = jnp.concatenate([batch.obs, batch.action], -1)
        l_sas = self._net.apply({"params": params["sas"]}, sas)[..., 0]
        l_sa = self._net.apply({"params": params["sa"]}, sa)[..., 0]
        return l_sas, l_sa

    def delta_r(self, state: dict, batch: Batch) -> jax.Array:
        """Estimated log p_source(s'|s,a) / p_target(s'|s,a), clipped."""
        l_sas, l_sa = self.logits({"sas": state["sas"].params, "sa": state["sa"].params}, batch)
        return jnp.clip(l_sas - l_sa, -self.clip, self.clip)

    def classifier_loss(self, params: dict, batch: Batch, rng: jax.Array):
        k_s, k_a, k_n = jax.random.split(rng, 3)
        noisy = batch.replace(
            obs=batch.obs + self.noise_std * jax.random.normal(k_s, batch.obs.shape),
            action=batch.action + self.noise_std * jax.random.normal(k_a, batch.action.shape),
            next_obs=batch.next_obs + self.noise_std * jax.random.normal(k_n, batch.next_obs.shape),
        )
        is_source = (batch.domain == SOURCE).astype(jnp.float32)
        l_sas, l_sa = self.logits(params, noisy)
        loss_sas, loss_sa = (
            bce_with_logits(l_sas, is_source).mean(),
            bce_with_logits(l_sa, is_source).mean(),
        )
        accuracy = jnp.mean((l_sas > 0) == (is_source > 0))
        return loss_sas + loss_sa, {"loss_sas": loss_sas, "loss_sa": loss_sa, "acc_sas": accuracy}

    # -- the add-on protocol ------------------------------------------------------------------
    def update(self, state: dict, batch: Batch, ctx: AddOnContext, rng: jax.Array):
        params = {"sas": state["sas"].params, "sa": state["sa"].params}
        grads, metrics = jax.grad(self.classifier_loss, has_aux=True)(params, batch, rng)
        new = {k: state[k].apply_gradients(grads=grads[k]) for k in ("sas", "sa")}
        return new, metrics

    def transform_batch(
        self, state: dict, batch: Batch, ctx: AddOnContext, rng: jax.Array
    ) -> Batch:
        correction = jax.lax.stop_gradient(self.eta * self.delta_r(state, batch))
        return batch.replace(
            reward=jnp.where(batch.domain == SOURCE, batch.reward - correction, batch.reward)
        )
