"""The learner contract.

A learner is a small static object (its frozen config plus network modules) with
pure functions over a state pytree:

    init(rng)                          -> state
    update(state, batch, rng, hooks)   -> (state, metrics)
    act(state, obs)                    -> action in [-1, 1]   (deterministic, jittable)
    explore(state, obs, rng)           -> action for acting online (default: act)
    updates_actor(state)               -> bool: the next update steps the actor (default: yes)
    value(state, obs)                  -> [B] state value     (used by SRPO's ranking)
    batch_value(state, batch)          -> [B] value of the batch's rows (default: value(obs);
                                          context learners read each row's history)

Recurrent learners (`recurrent = True`: MAPLE, online context SAC) act with a carry (the
encoders' recurrent states) through an episode; the caller passes the previous action and
`reset` (true at an episode's first step, which zeroes the carry):
    initial_carry(n)                                    -> carry for n episodes
    act_step(state, carry, obs, prev_action, reset)     -> (carry, action)  (deterministic)
    explore_step(state, carry, obs, prev_action, reset, rng) -> (carry, action)

Losses are written as named per-sample *terms* with *weights*; the objective is
sum_k mean(weight_k * term_k). Add-ons edit (terms, weights) through `Hooks`
instead of editing the learner (see docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from shiftrl.core.types import Batch

Terms = dict[str, jax.Array]
Weights = dict[str, Any]  # scalars or [B] arrays
Metrics = dict[str, jax.Array]


@dataclass(frozen=True)
class LearnerSpec:
    """Static facts a learner is built for."""

    obs_dim: int
    act_dim: int
    total_steps: int = 1_000_000
    """Length of training, for schedules such as IQL's cosine actor learning rate."""


@dataclass(frozen=True)
class CommonConfig:
    """Fields every learner config carries: data preprocessing its paper uses."""

    normalize_states: bool = True
    """Standardise observations with the training data's mean/std (eps 1e-3)."""
    reward_scale: float = 1.0
    """Rewards become r * reward_scale + reward_bias before training."""
    reward_bias: float = 0.0
    """Added after scaling (e.g. -1 for AntMaze-style sparse rewards)."""
    normalize_reward_by_returns: bool = False
    """IQL's locomotion trick: r *= 1000 / (max episode return - min episode return)."""


class Hooks:
    """Lets add-ons edit a learner's loss terms; built inside the traced train step.
    `rng` feeds hooks that sample (SPOT's density estimate draws latents)."""

    def __init__(self, addons: tuple = (), states: dict[str, Any] | None = None, rng=None):
        self.addons = addons
        self.states = states or {}
        self.rng = rng

    def _key(self, i: int, salt: int) -> jax.Array:
        base = self.rng if self.rng is not None else jax.random.PRNGKey(0)
        return jax.random.fold_in(jax.random.fold_in(base, i), salt)

    def actor(self, batch: Batch, terms: Terms, weights: Weights) -> tuple[Terms, Weights]:
        for i, ad in enumerate(self.addons):
            terms, weights = ad.actor_hook(
                self.states[ad.name], batch, terms, weights, self._key(i, 0)
            )
        return terms, weights

    def critic(self, batch: Batch, terms: Terms, weights: Weights) -> tuple[Terms, Weights]:
        for i, ad in enumerate(self.addons):
            terms, weights = ad.critic_hook(
                self.states[ad.name], batch, terms, weights, self._key(i, 1)
            )
        return terms, weights


NO_HOOKS = Hooks()


def objective(terms: Terms, weights: Weights, prefix: str) -> tuple[jax.Array, Metrics]:
    """sum_k mean(w_k * t_k) over the weighted terms, with each term's mean as a metric."""
    loss = sum(jnp.mean(weights[k] * terms[k]) for k in weights)
    metrics = {f"{prefix}/{k}": jnp.mean(terms[k]) for k in weights}
    metrics[f"{prefix}/loss"] = loss
    return loss, metrics


def td_critic_loss(
    q: jax.Array, target: jax.Array, batch: Batch, hooks: Hooks
) -> tuple[jax.Array, Metrics]:
    """The ensemble TD loss sum_i (Q_i(s, a) - y)^2 as the named term "td", through the hooks."""
    terms = {"td": jnp.sum((q - target) ** 2, axis=0)}
    terms, weights = hooks.critic(batch, terms, {"td": 1.0})
    loss, metrics = objective(terms, weights, "critic")
    return loss, {**metrics, "critic/q": q.mean(), "critic/target": target.mean()}


def vae_objective(vae: Any, params: Any, batch: Batch, rng: jax.Array, kl_weight: float):
    """The behaviour CVAE's loss: mean negative ELBO of the dataset actions (BCQ, BEAR)."""
    terms = {"nelbo": vae.elbo_loss(params, batch.obs, batch.action, rng, kl_weight)}
    return objective(terms, {"nelbo": 1.0}, "vae")


class Learner:
    """Base class: subclasses set `name`, `Config`, `PRESETS` and the pure functions."""

    name: ClassVar[str] = "learner"
    Config: ClassVar[type] = CommonConfig
    PRESETS: ClassVar[dict[str, Any]] = {}
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    uses_rewards: ClassVar[bool] = True
    """False for learners that ignore rewards (BC), on which reward add-ons do nothing."""
    recurrent: ClassVar[bool] = False
    """True for learners whose policy carries recurrent states through an episode (context
    encoders): evaluation then calls `initial_carry` / `act_step` instead of `act`."""

    def __init__(self, config: Any, spec: LearnerSpec):
        self.config = config
        self.spec = spec

    # -- the contract -----------------------------------------------------------------
    def init(self, rng: jax.Array) -> Any:
        raise NotImplementedError

    def update(
        self, state: Any, batch: Batch, rng: jax.Array, hooks: Hooks = NO_HOOKS
    ) -> tuple[Any, Metrics]:
        raise NotImplementedError

    def act(self, state: Any, obs: jax.Array) -> jax.Array:
        raise NotImplementedError

    def explore(self, state: Any, obs: jax.Array, rng: jax.Array) -> jax.Array:
        """The action taken when acting online (data collection, fine-tuning)."""
        return self.act(state, obs)

    def updates_actor(self, state: Any) -> jax.Array:
        """Whether the next `update` from `state` steps the actor (default: every update;
        TD3's delayed actor: every `policy_freq`-th). Add-ons that follow the actor's
        schedule read it (SSAR updates beta(s) on actor steps only, as its official code)."""
        return jnp.asarray(True)

    def value(self, state: Any, obs: jax.Array) -> jax.Array:
        """V(s); learners without a value function use their critic at pi(s)."""
        raise NotImplementedError(f"{self.name} has no value estimate")

    def batch_value(self, state: Any, batch: Batch) -> jax.Array:
        """The value of each row of `batch` (SRPO ranks by it); a context learner computes it
        with the context each row's segment gives (MAPLE). Default: `value(state, batch.obs)`."""
        return self.value(state, batch.obs)

    def initial_carry(self, n: int) -> Any:
        """A recurrent policy's carry for n episodes."""
        raise NotImplementedError(f"{self.name} is not recurrent")

    def act_step(
        self, state: Any, carry: Any, obs: jax.Array, prev_action: jax.Array, reset: jax.Array
    ) -> tuple[Any, jax.Array]:
        """(next carry, deterministic action) for a recurrent policy."""
        raise NotImplementedError(f"{self.name} is not recurrent")

    def explore_step(
        self,
        state: Any,
        carry: Any,
        obs: jax.Array,
        prev_action: jax.Array,
        reset: jax.Array,
        rng: jax.Array,
    ) -> tuple[Any, jax.Array]:
        """(next carry, sampled action) for a recurrent policy."""
        raise NotImplementedError(f"{self.name} is not recurrent")

    # -- helpers -------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str | None = None) -> Any:
        if name is None:
            return cls.Config()
        return cls.PRESETS[name]

    @classmethod
    def config_fields(cls) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(cls.Config)}


class RecurrentActing:
    """`act` and `explore` of a recurrent learner (MAPLE, context SAC): its `act_step` /
    `explore_step` at an episode's first step (fresh carry, zero previous action), for
    callers that act on single states; episodes go through the step methods."""

    recurrent: ClassVar[bool] = True

    def first_step(self, obs: jax.Array) -> tuple[Any, jax.Array, jax.Array]:
        """(carry, previous action, reset) of an episode's first step for `obs` [n, d]."""
        n = obs.shape[0]
        return self.initial_carry(n), jnp.zeros((n, self.spec.act_dim)), jnp.ones((n,), bool)

    def act(self, state: Any, obs: jax.Array) -> jax.Array:
        """The deterministic action at an episode's first step (no history)."""
        carry, prev, reset = self.first_step(obs)
        return self.act_step(state, carry, obs, prev, reset)[1]

    def explore(self, state: Any, obs: jax.Array, rng: jax.Array) -> jax.Array:
        """A sampled action at an episode's first step (no history)."""
        carry, prev, reset = self.first_step(obs)
        return self.explore_step(state, carry, obs, prev, reset, rng)[1]
