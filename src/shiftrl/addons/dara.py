"""DARA: Dynamics-Aware Reward Augmentation in Offline RL (Liu et al., ICLR 2022).

Two binary domain classifiers, on (s, a, s') and on (s, a), separate source from target
transitions. With raw logits l(x) = log q(source|x) / q(target|x) (binary cross-entropy
on logits: no softmax applied twice, unlike ODRL's implementation),

    delta_r(s, a, s') = l_sas(s, a, s') - l_sa(s, a)  ~  log p_source(s'|s, a) / p_target(s'|s, a)

and source rewards become r - eta * clip(delta_r, -c, c); target rewards are untouched.
Training inputs get Gaussian noise (std 1.0, DARC's trick against over-confident
classifiers), in the data's raw units as DARC and ODRL add it (`noise_units="raw"`: on
standardized states that is std 1.0 / obs_std per dimension). The penalty is in the data's
raw reward units, as the paper's r (`reward_units="raw"`: multiplied by the learner's
reward scale, e.g. IQL's 1000 / return spread, before it is added). The classifiers train
alongside the learner (one step per learner step, as in ODRL) or beforehand and frozen
(`pretrain_steps > 0`, `train_alongside=False`).

Control (`correction="constant"`): every source row gets the same penalty, eta times the
batch's mean delta_r over its source rows, instead of its own; it keeps DARA's average
size and drops its dependence on (s, a, s'), so a gain that survives it is not
dynamics-aware.

Released MAPLE form (`correction="maple_dara"`, SRPO's `maple_dara.py` baseline): every
row's reward, all domains, gets + eta * log(clip(-delta_r, 0.1, 10)): that code labels
target 1 / source 0, so its logit difference is -delta_r, clamped (not the sigmoid) and
logged, the same quirk as SRPO's released bonus.

Logged each step: both classifiers' accuracy on clean inputs (`acc_sas`, `acc_sa`; the
(s, a) one is the baseline a dynamics signal must beat) and on the noisy training inputs
(`acc_sas_noisy`), delta_r's mean and std on source and on target rows (`delta_r_source`,
`delta_r_source_std`, `delta_r_target`, `delta_r_target_std`, before clipping and
weighting) and the mean penalty on source rows in the learner's reward units
(`penalty_source`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from shiftrl.addons.base import UNITS, AddOn, AddOnContext, masked_mean_std, raw_units
from shiftrl.core.errors import ConfigError
from shiftrl.core.types import SOURCE, Batch
from shiftrl.learners.base import Learner, LearnerSpec
from shiftrl.nets import MLP

CORRECTIONS = ("delta_r", "constant", "maple_dara")
UNIT_CHOICES = ("raw", "learner")


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
    """Weight of the correction (0.1 in ODRL's DARA configs), in `reward_units`."""
    clip: float = 10.0
    """delta_r is clipped to [-clip, clip] (ODRL, "based on the DARA paper")."""
    noise_std: float = 1.0
    """Gaussian noise on classifier training inputs (DARC), in `noise_units`."""
    noise_units: str = "raw"
    """'raw': the noise std is in the data's raw units (DARC, ODRL: raw observations and
    actions); 'learner': in the learner's inputs (standardized states, actions in [-1, 1])."""
    reward_units: str = "raw"
    """'raw': eta * delta_r is in the data's reward units (the paper's r), scaled like the
    rewards before it is added; 'learner': added to the learner's (scaled) rewards as is."""
    correction: str = "delta_r"
    """'delta_r': each source row's own estimate (DARA); 'constant': the batch's mean over its
    source rows for every source row (the control: same size, no dynamics awareness);
    'maple_dara': the released MAPLE baseline's + eta * log(clip(-delta_r, 0.1, 10)) on
    every row."""
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
        for field, value, allowed in (
            ("correction", self.correction, CORRECTIONS),
            ("noise_units", self.noise_units, UNIT_CHOICES),
            ("reward_units", self.reward_units, UNIT_CHOICES),
        ):
            if value not in allowed:
                raise ConfigError(
                    f"dara.{field} must be one of {', '.join(allowed)}, got '{value}'"
                )

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
            UNITS: raw_units(spec),
        }

    # -- classifiers ----------------------------------------------------------------------
    def logits(self, params: dict, batch: Batch) -> tuple[jax.Array, jax.Array]:
        """(l_sas, l_sa): log-odds of `source` for each transition."""
        sas = jnp.concatenate([batch.obs, batch.action, batch.next_obs], -1)
        sa = jnp.concatenate([batch.obs, batch.action], -1)
        l_sas = self._net.apply({"params": params["sas"]}, sas)[..., 0]
        l_sa = self._net.apply({"params": params["sa"]}, sa)[..., 0]
        return l_sas, l_sa

    @staticmethod
    def _params(state: dict) -> dict:
        return {"sas": state["sas"].params, "sa": state["sa"].params}

    def raw_delta_r(self, state: dict, batch: Batch) -> jax.Array:
        """Estimated log p_source(s'|s,a) / p_target(s'|s,a), unclipped."""
        l_sas, l_sa = self.logits(self._params(state), batch)
        return l_sas - l_sa

    def delta_r(self, state: dict, batch: Batch) -> jax.Array:
        """Estimated log p_source(s'|s,a) / p_target(s'|s,a), clipped."""
        return jnp.clip(self.raw_delta_r(state, batch), -self.clip, self.clip)

    def noise_scales(self, state: dict) -> tuple[jax.Array, jax.Array]:
        """The input-noise std on (states, actions) in the learner's units."""
        if self.noise_units == "learner":
            return jnp.asarray(self.noise_std), jnp.asarray(self.noise_std)
        units = state[UNITS]
        return self.noise_std / units["obs"], self.noise_std / units["action"]

    def classifier_loss(self, params: dict, batch: Batch, rng: jax.Array, noise=(1.0, 1.0)):
        k_s, k_a, k_n = jax.random.split(rng, 3)
        obs_noise, act_noise = noise
        noisy = batch.replace(
            obs=batch.obs + obs_noise * jax.random.normal(k_s, batch.obs.shape),
            action=batch.action + act_noise * jax.random.normal(k_a, batch.action.shape),
            next_obs=batch.next_obs + obs_noise * jax.random.normal(k_n, batch.next_obs.shape),
        )
        is_source = (batch.domain == SOURCE).astype(jnp.float32)
        l_sas, l_sa = self.logits(params, noisy)
        loss_sas, loss_sa = (
            bce_with_logits(l_sas, is_source).mean(),
            bce_with_logits(l_sa, is_source).mean(),
        )
        accuracy = jnp.mean((l_sas > 0) == (is_source > 0))
        return loss_sas + loss_sa, {
            "loss_sas": loss_sas,
            "loss_sa": loss_sa,
            "acc_sas_noisy": accuracy,
        }

    def penalty(self, state: dict, batch: Batch) -> jax.Array:
        """[B] the amount subtracted from each row's reward, in the learner's units (source
        rows only, 0 on the others; with `maple_dara`, minus the bonus of every row)."""
        is_source = batch.domain == SOURCE
        scale = state[UNITS]["reward"] if self.reward_units == "raw" else 1.0
        if self.correction == "maple_dara":  # a bonus on every row: minus a penalty
            bonus = jnp.log(jnp.clip(-self.raw_delta_r(state, batch), 0.1, 10.0))
            return -self.eta * scale * bonus
        delta = self.delta_r(state, batch)
        if self.correction == "constant":
            mean, _ = masked_mean_std(delta, is_source.astype(jnp.float32))
            delta = jnp.full_like(delta, mean)
        return jnp.where(is_source, self.eta * scale * delta, 0.0)

    # -- the add-on protocol ------------------------------------------------------------------
    def update(self, state: dict, batch: Batch, ctx: AddOnContext, rng: jax.Array):
        params = self._params(state)
        noise = self.noise_scales(state)
        grads, metrics = jax.grad(self.classifier_loss, has_aux=True)(params, batch, rng, noise)
        new = {**state, **{k: state[k].apply_gradients(grads=grads[k]) for k in ("sas", "sa")}}
        return new, {**metrics, **self.diagnostics(state, batch)}

    def diagnostics(self, state: dict, batch: Batch) -> dict[str, jax.Array]:
        """What a reader needs to judge the correction, on this batch's clean inputs."""
        is_source = (batch.domain == SOURCE).astype(jnp.float32)
        l_sas, l_sa = self.logits(self._params(state), batch)
        delta = jax.lax.stop_gradient(l_sas - l_sa)
        src_mean, src_std = masked_mean_std(delta, is_source)
        tgt_mean, tgt_std = masked_mean_std(delta, 1.0 - is_source)
        pen_mean, _ = masked_mean_std(self.penalty(state, batch), is_source)
        return {
            "acc_sas": jnp.mean((l_sas > 0) == (is_source > 0)),
            "acc_sa": jnp.mean((l_sa > 0) == (is_source > 0)),
            "delta_r_source": src_mean,
            "delta_r_source_std": src_std,
            "delta_r_target": tgt_mean,
            "delta_r_target_std": tgt_std,
            "penalty_source": pen_mean,
        }

    def transform_batch(
        self, state: dict, batch: Batch, ctx: AddOnContext, rng: jax.Array
    ) -> Batch:
        correction = jax.lax.stop_gradient(self.penalty(state, batch))
        return batch.replace(reward=batch.reward - correction)
