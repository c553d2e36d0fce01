"""SRPO: State Regularized Policy Optimization on Data with Dynamics Shift (Xue et al., NeurIPS 2023).

Optimal policies of structurally similar MDPs with different dynamics share a stationary
state distribution. SRPO regularizes towards it through the reward:

    1. rank the batch's states by the learner's own value estimate (`learner.value`:
       V(s) for IQL, min_i Q_i(s, pi(s)) for TD3+BC / CQL / SAC), label the top `rho`
       fraction high-value (1) and the rest low-value (0);
    2. train a state discriminator D(s) = sigmoid(logit(s)) on those labels (BCE);
    3. rewards become r + lambda * log(clip(logit(s), 0.1, 10)), what the released code
       adds (`form="clipped"`, the default: SRPO's published numbers come from it), or the
       paper's r + lambda * log(D(s) / (1 - D(s))) = r + lambda * logit(s)
       (`form="paper"`, the logit clipped to [-logit_clip, logit_clip] for safety).
The bonus is in the data's raw reward units, as the released code adds it to raw rewards
(`reward_units="raw"`: multiplied by the learner's reward scale, e.g. IQL's 1000 / return
spread, before it is added); at saturation the released form gives lambda * log 10 = 0.23
per step, about 8% of a hopper reward. It is computed without gradients into the learner
and applied to every transition (all dynamics), as in the official code.

Control (`labels_from="shuffled"`): the discriminator learns the same number of 1-labels per
batch, permuted at random, so it carries no value information; what survives it is not
state regularization. Logged each step: the discriminator's loss and accuracy, and the
bonus against the reward in the learner's units (`bonus_abs` = mean |bonus|, `reward_abs`
= mean |r|, `bonus_to_reward` = their ratio), and the share of saturated logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from shiftrl.addons.base import UNITS, AddOn, AddOnContext, raw_units
from shiftrl.addons.dara import UNIT_CHOICES, bce_with_logits
from shiftrl.core.errors import ConfigError
from shiftrl.core.types import Batch
from shiftrl.learners.base import Learner, LearnerSpec
from shiftrl.nets import MLP

FORMS = ("clipped", "paper")


def ranking_values(learner, learner_state, batch: Batch) -> jax.Array:
    """The values SRPO ranks the batch's rows by: `learner.batch_value` (a context learner
    values each row with its segment's history), or `value(obs)` for a bare stand-in."""
    batch_value = getattr(learner, "batch_value", None)
    if batch_value is None:
        return learner.value(learner_state, batch.obs)
    return batch_value(learner_state, batch)


LABELS = ("value", "shuffled")


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
    form: str = "clipped"
    """'clipped': lambda * log(clip(logit, 0.1, 10)) (released code, whose numbers the paper
    reports); 'paper': lambda * log(D/(1-D)) = lambda * logit, clipped to +-logit_clip."""
    reward_units: str = "raw"
    """'raw': the bonus is in the data's reward units (the released code's raw rewards);
    'learner': added to the learner's (scaled) rewards as is."""
    labels_from: str = "value"
    """'value': top-rho states by value are labelled 1 (SRPO); 'shuffled': the same number
    of 1-labels at random positions (the control: a discriminator without value signal)."""
    logit_clip: float = 10.0
    """Bound on |logit| in the paper form."""
    hidden: tuple[int, ...] = (256, 256, 256)
    """Discriminator MLP (the official code's 3 x 256 ReLU)."""
    lr: float = 1e-3

    def check(self, learner: Learner) -> None:
        if self.form not in FORMS:
            raise ConfigError(f"srpo form must be one of {', '.join(FORMS)}, got '{self.form}'")
        if self.labels_from not in LABELS:
            raise ConfigError(
                f"srpo labels_from must be one of {', '.join(LABELS)}, got '{self.labels_from}'"
            )
        if self.reward_units not in UNIT_CHOICES:
            raise ConfigError(
                f"srpo reward_units must be one of {', '.join(UNIT_CHOICES)}, "
                f"got '{self.reward_units}'"
            )
        if not 0.0 < self.rho < 1.0:
            raise ConfigError("srpo rho must be in (0, 1)")
        if type(learner).value is Learner.value:
            raise ConfigError(
                f"srpo ranks states by the learner's value estimate; {learner.name} has none"
            )

    def init(self, rng: jax.Array, spec: LearnerSpec) -> dict:
        params = MLP(self.hidden, 1).init(rng, jnp.zeros((1, spec.obs_dim)))["params"]
        disc = TrainState.create(apply_fn=None, params=params, tx=optax.adam(self.lr))
        return {"disc": disc, UNITS: raw_units(spec)}

    def logit(self, params, obs: jax.Array) -> jax.Array:
        return MLP(self.hidden, 1).apply({"params": params}, obs)[..., 0]

    def labels(self, values: jax.Array) -> jax.Array:
        """1 for the top-rho fraction of states by value, 0 for the rest."""
        n_high = max(1, round(self.rho * values.shape[0]))
        threshold = jnp.sort(values)[values.shape[0] - n_high]
        return (values >= threshold).astype(jnp.float32)

    def raw_bonus(self, params, obs: jax.Array) -> jax.Array:
        """[B] the bonus in the form's own units (raw rewards with `reward_units='raw'`)."""
        logit = self.logit(params, obs)
        if self.form == "clipped":
            return self.lam * jnp.log(jnp.clip(logit, 0.1, 10.0))
        return self.lam * jnp.clip(logit, -self.logit_clip, self.logit_clip)

    def regularizer(self, state: dict, obs: jax.Array) -> jax.Array:
        """[B] the bonus added to the learner's rewards (its reward units)."""
        scale = state[UNITS]["reward"] if self.reward_units == "raw" else 1.0
        return scale * self.raw_bonus(state["disc"].params, obs)

    # -- the add-on protocol ------------------------------------------------------------------
    def update(self, state: dict, batch: Batch, ctx: AddOnContext, rng: jax.Array):
        values = jax.lax.stop_gradient(ranking_values(ctx.learner, ctx.learner_state, batch))
        labels = self.labels_for(values, rng)

        def loss_fn(params):
            logit = self.logit(params, batch.obs)
            return bce_with_logits(logit, labels).mean(), (
                jnp.mean((logit > 0) == (labels > 0)),
                logit,
            )

        (loss, (acc, logit)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state["disc"].params
        )
        bonus = jnp.abs(self.regularizer(state, batch.obs))
        reward = jnp.abs(batch.reward)
        bound = 10.0 if self.form == "clipped" else self.logit_clip
        metrics = {
            "loss": loss,
            "accuracy": acc,
            "bonus_abs": bonus.mean(),
            "reward_abs": reward.mean(),
            "bonus_to_reward": bonus.mean() / jnp.maximum(reward.mean(), 1e-8),
            "saturated": jnp.mean(jnp.abs(logit) >= bound),
        }
        return {**state, "disc": state["disc"].apply_gradients(grads=grads)}, metrics

    def labels_for(self, values: jax.Array, rng: jax.Array) -> jax.Array:
        """The discriminator's targets: value-ranked, or (the control) shuffled."""
        labels = self.labels(values)
        if self.labels_from == "shuffled":
            labels = jax.random.permutation(rng, labels)
        return labels

    def transform_batch(
        self, state: dict, batch: Batch, ctx: AddOnContext, rng: jax.Array
    ) -> Batch:
        bonus = jax.lax.stop_gradient(self.regularizer(state, batch.obs))
        return batch.replace(reward=batch.reward + bonus)
