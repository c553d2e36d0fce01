"""SRPO: State Regularized Policy Optimization on Data with Dynamics Shift (Xue et al., NeurIPS 2023).

Optimal policies of structurally similar MDPs with different dynamics share a stationary
state distribution. SRPO regularizes towards it through the reward:

    1. rank the batch's states by the learner's own value estimate (`learner.value`:
       V(s) for IQL, min_i Q_i(s, pi(s)) for TD3+BC / CQL / SAC), label the top `rho`
       fraction high-value (1) and the rest low-value (0);
    2. train a state discriminator D(s) = sigmoid(logit(s)) on those labels (BCE);
    3. rewards become r + lambda * log(D(s) / (1 - D(s))) = r + lambda * logit(s)
       (`form="paper"`, the logit clipped to [-logit_clip, logit_clip] for safety), or
       the released code's r + lambda * log(clip(logit(s), 0.1, 10)) (`form="clipped"`).
The regularizer is computed without gradients into the learner and applied to every
transition (all dynamics), as in the official code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from shiftrl.addons.base import AddOn, AddOnContext
from shiftrl.addons.dara import bce_with_logits
from shiftrl.core.errors import ConfigError
from shiftrl.core.types import Batch
from shiftrl.learners.base import Learner, LearnerSpec
from shiftrl.nets import MLP

FORMS = ("paper", "clipped")


@dataclass(frozen=True)
class SRPO(AddOn):
    name: ClassVar[str] = "srpo"
    description: ClassVar[str] = (
        "state-distribution regularizer from a value-ranked state discriminator"
    )

    lam: float = 0.1
    """lambda: weight of the regularizer (0.1 or 0.3 in the paper)."""
    rho: float = 0.5
    """Fraction of each batch's states labelled high-value (0.2 or 0.5 in the paper)."""
    form: str = "paper"
    """'paper': lambda * log(D/(1-D)); 'clipped': lambda * log(clip(logit, 0.1, 10)) (released code)."""
    logit_clip: float = 10.0
    """Bound on |logit| in the paper form."""
    hidden: tuple[int, ...] = (256, 256, 256)
    """Discriminator MLP (the official code's 3 x 256 ReLU)."""
    lr: float = 1e-3

    def check(self, learner: Learner) -> None:
        if self.form not in FORMS:
            raise ConfigError(f"srpo form must be one of {', '.join(FORMS)}, got '{self.form}'")
        if not 0.0 < self.rho < 1.0:
            raise ConfigError("srpo rho must be in (0, 1)")
        if type(learner).value is Learner.value:
            raise ConfigError(
                f"srpo ranks states by the learner's value estimate; {learner.name} has none"
            )

    def init(self, rng: jax.Array, spec: LearnerSpec) -> TrainState:
        params = MLP(self.hidden, 1).init(rng, jnp.zeros((1, spec.obs_dim)))["params"]
        return TrainState.create(apply_fn=None, params=params, tx=optax.adam(self.lr))

    def logit(self, params, obs: jax.Array) -> jax.Array:
        return MLP(self.hidden, 1).apply({"params": params}, obs)[..., 0]

    def labels(self, values: jax.Array) -> jax.Array:
        """1 for the top-rho fraction of states by value, 0 for the rest."""
        n_high = max(1, round(self.rho * values.shape[0]))
        threshold = jnp.sort(values)[values.shape[0] - n_high]
        return (values >= threshold).astype(jnp.float32)

    def regularizer(self, state: TrainState, obs: jax.Array) -> jax.Array:
        logit = self.logit(state.params, obs)
        if self.form == "clipped":
            return self.lam * jnp.log(jnp.clip(logit, 0.1, 10.0))
        return self.lam * jnp.clip(logit, -self.logit_clip, self.logit_clip)

    # -- the add-on protocol ------------------------------------------------------------------
    def update(self, state: TrainState, batch: Batch, ctx: AddOnContext, rng: jax.Array):
        values = jax.lax.stop_gradient(ctx.learner.value(ctx.learner_state, batch.obs))
        labels = self.labels(values)

        def loss_fn(params):
            logit = self.logit(params, batch.obs)
            return bce_with_logits(logit, labels).mean(), jnp.mean((logit > 0) == (labels > 0))

        (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        return state.apply_gradients(grads=grads), {"loss": loss, "accuracy": acc}

    def transform_batch(
        self, state: TrainState, batch: Batch, ctx: AddOnContext, rng: jax.Array
    ) -> Batch:
        bonus = jax.lax.stop_gradient(self.regularizer(state, batch.obs))
        return batch.replace(reward=batch.reward + bonus)
