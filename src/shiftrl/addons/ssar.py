"""SSAR: Selective State-Adaptive Regularization for offline RL (Luo et al., ICML 2025).

A state-wise coefficient beta(s) replaces the learner's scalar regularization weight:
TD3+BC's BC term (base value 1/alpha) or CQL's conservative gap (base value cql_alpha).

    beta(s)  = 1.5 * base * sigmoid(MLP(s)),  3 x 512, last bias log 2 (starts near base)
    TD3+BC:  d(s) = mean_j min((pi(s)_j - a_j)^2, 1),  C_n = (sigma n)^2
             L_beta = mean[(C_n - d(s)) beta(s) trust]
    CQL:     C_n(s) = min(log pi(a+|s), log pi(a-|s)) per action dim, a+- = tanh(mu +- n std)
             L_beta = mean[mean_j(log pi_j(a|s) - C_n,j(s)) beta(s) trust]

So beta(s) falls where the policy already stays within the n-sigma tolerance of the data
action and rises where it leaves it. n starts at `min_n` and every `update_period` steps
either freezes for good (the trusted samples satisfy the threshold on average) or grows
by (max_n - min_n) / 10. "Trusted" samples come from a selected sub-dataset: whole
trajectories whose return exceeds a threshold (`select="traj"`), or transitions with a
non-negative advantage under an IQL critic pretrained by the add-on (`select="iql"`).
`select_actions` restricts the beta update to trusted samples; `loosen_bound` applies the
regularizer only to them.

On TD3+BC the learner's own objective -alpha Q / mean|Q| + (beta(s) / base) (pi - a)^2 is
alpha times SSAR's -Q / mean|Q| + beta(s) (pi - a)^2 (Adam is invariant to that constant).
beta has its own Adam with a tiny learning rate (3e-8 TD3+BC, 1e-8 CQL) and grad-norm clip
0.5, steps with the learner's actor (TD3+BC's every second update, as the official code;
`update_every`), and is frozen online, where it is only scaled: linearly by 1 - t / T (TD3+BC, not
floored, as the official code) or by cos(min(t / T, 1) pi / 2) (CQL).

The official rate is set for 1M learner steps; Adam moves a weight about lr per step, so a
run 10x shorter moves beta(s) 10x less. `beta_lr_steps` states the run length the rate is
for (the learning rate is multiplied by 1e6 / beta_lr_steps): the benchmark budgets scale
it with the learner's steps, as they scale the n schedule's `update_period`.

Control (`beta_form="uniform"`): beta(s) is learned as usual, but every (trusted) sample
gets the batch's mean of beta(s) over the trusted samples: the same level, no state
dependence. Logged each step: the trusted fraction (`trusted`), beta(s)'s mean, std, min
and max over the batch's trusted samples (`beta`, `beta_std`, `beta_min`, `beta_max`), n,
the trusted samples' mean gap C_n - d (`gap`) and whether beta stepped (`beta_updated`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState

from shiftrl.addons.base import AddOn, AddOnContext, masked_mean_std
from shiftrl.core.errors import ConfigError
from shiftrl.core.types import Batch
from shiftrl.learners.base import LearnerSpec

TRUST = "ssar/trust"
_LOG2 = math.log(2.0)  # sigmoid(log 2) = 2/3: beta starts at base = (2/3) * 1.5 base
_ACTION_CLIP = 0.99999
OFFICIAL_STEPS = 1_000_000
"""The learner steps SSAR's official learning rates and schedules are set for."""

# Per-dataset settings of the official configs (config/<algo>/<env>/<dataset>.yaml). The
# trajectory-return thresholds are D4RL returns; our data differ, so they are kept as
# D4RL-normalized scores (`trust_score`) and mapped through each dataset's reference scores.
_D4RL_REF = {"hopper": (-20.272305, 3234.3), "walker2d": (1.629008, 4592.3),
             "halfcheetah": (-280.178953, 12135.0)}  # fmt: skip


def _score(robot: str, ret: float) -> float:
    lo, hi = _D4RL_REF[robot]
    return round(100.0 * (ret - lo) / (hi - lo), 1)


def _traj(robot: str, ret: float, max_n: float, **kw) -> dict:
    return {"select": "traj", "trust_score": _score(robot, ret), "max_n": max_n, **kw}


def _iql(tau: float, max_n: float, **kw) -> dict:
    return {"select": "iql", "iql_expectile": tau, "max_n": max_n, **kw}


PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "td3bc": {
        "halfcheetah-medium": _traj("halfcheetah", 5200, 3.0),
        "halfcheetah-medium-replay": _iql(0.7, 3.0),
        "halfcheetah-medium-expert": _iql(0.7, 1.5, loosen_bound=False),
        "halfcheetah-expert": _traj("halfcheetah", 10500, 1.5),
        "hopper-medium": _traj("hopper", 1800, 3.0),
        "hopper-medium-replay": _iql(0.7, 3.0),
        "hopper-medium-expert": _iql(0.5, 1.5),
        "hopper-expert": _traj("hopper", 3500, 1.5),
        "walker2d-medium": _traj("walker2d", 2500, 3.0),
        "walker2d-medium-replay": _iql(0.7, 3.0),
        "walker2d-medium-expert": _iql(0.7, 1.5),
        "walker2d-expert": _traj("walker2d", 4500, 1.5),
    },
    "cql": {
        "halfcheetah-medium": _traj("halfcheetah", 6000, 3.0),
        "halfcheetah-medium-replay": _traj("halfcheetah", 6000, 3.0),
        "halfcheetah-medium-expert": _traj("halfcheetah", 11000, 3.0),
        "halfcheetah-expert": _traj("halfcheetah", 11000, 3.0),
        "hopper-medium": _traj("hopper", 2500, 3.0),
        "hopper-medium-replay": _iql(0.7, 3.0),
        "hopper-medium-expert": _iql(0.5, 1.5),
        "hopper-expert": _traj("hopper", 3500, 1.5),
        "walker2d-medium": _traj("walker2d", 3600, 3.0),
        "walker2d-medium-replay": _iql(0.7, 3.0),
        "walker2d-medium-expert": _iql(0.7, 3.0),
        "walker2d-expert": _traj("walker2d", 4800, 3.0),
    },
}


def preset_settings(learner: str, dataset_id: str) -> dict[str, Any]:
    """The official per-dataset SSAR settings for a learner and a dataset of our ID scheme."""
    from shiftrl.addons.spot import task_key

    return dict(PRESETS.get(learner, {}).get(task_key(dataset_id) or "", {}))


class BetaNet(nn.Module):
    """beta(s) = max_value * sigmoid(MLP(s)): Xavier weights, zero biases, last bias log 2.

    The last layer's kernel starts at zero (the official ParaNet draws it Xavier too), so
    beta(s) = max_value * sigmoid(log 2) = the base coefficient exactly, for every state:
    with a random last kernel it starts at 0.94-1.13x base on unit-Gaussian states. Its
    gradient (the hidden activations) is non-zero, so beta(s) moves from the first step."""

    hidden: tuple[int, ...]
    max_value: float

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs
        for h in self.hidden:
            x = nn.relu(nn.Dense(h, kernel_init=nn.initializers.xavier_uniform())(x))
        x = nn.Dense(
            1, kernel_init=nn.initializers.zeros, bias_init=nn.initializers.constant(_LOG2)
        )(x)
        return self.max_value * jax.nn.sigmoid(x[..., 0])


def _tanh_normal_log_prob_per_dim(a: jax.Array, mean: jax.Array, log_std: jax.Array):
    """Per-dimension log-density of a = tanh(u), u ~ N(mean, exp(log_std)^2)."""
    a = jnp.clip(a, -_ACTION_CLIP, _ACTION_CLIP)
    u = jnp.arctanh(a)
    z = (u - mean) * jnp.exp(-log_std)
    return -0.5 * z**2 - log_std - 0.5 * jnp.log(2.0 * jnp.pi) - jnp.log1p(-(a**2))


@dataclass(frozen=True)
class SSAR(AddOn):
    name: ClassVar[str] = "ssar"
    description: ClassVar[str] = (
        "state-wise coefficient beta(s) for TD3+BC's BC term or CQL's gap, on a trusted sub-dataset"
    )
    finetune_supported: ClassVar[bool] = True
    finetune_replay: ClassVar[str | None] = "part"
    finetune_warmup: ClassVar[int] = 5000  # official: 5,000 policy steps before updating

    select: str = "traj"
    """Trusted sub-dataset: 'traj' (trajectory return above a threshold), 'iql' (Q >= V under
    a pretrained IQL critic), or 'none' (every sample trusted)."""
    trust_return: float | None = None
    """'traj': the return threshold in the data's own units (takes precedence)."""
    trust_score: float | None = None
    """'traj': the threshold as a normalized score (mapped by the dataset's reference scores)."""
    trust_quantile: float = 0.5
    """'traj' without either threshold: trust trajectories above this return quantile."""
    iql_expectile: float = 0.7
    """'iql': expectile tau of the pretrained IQL value."""
    iql_steps: int = 1_000_000
    """'iql': IQL value/critic steps before the learner starts (official: 1e6)."""
    select_actions: bool = True
    """Only trusted samples drive the beta update."""
    loosen_bound: bool = True
    """The regularizer applies only to trusted samples."""
    min_n: float = 1.0
    """Initial tolerance n (in units of sigma)."""
    max_n: float = 3.0
    """Largest tolerance n."""
    update_period: int = 50_000
    """Steps between two checks of the n schedule."""
    sigma: float = 0.1
    """TD3+BC threshold scale: C_n = (sigma n)^2 (the exploration noise)."""
    hidden: tuple[int, ...] = (512, 512, 512)
    """Hidden sizes of the beta(s) network."""
    lr: float | None = None
    """Adam learning rate of beta(s) (None: 3e-8 on TD3+BC, 1e-8 on CQL)."""
    beta_lr_steps: int = OFFICIAL_STEPS
    """The run length `lr` is meant for: the rate used is lr * 1e6 / beta_lr_steps (the
    official rate at the official 1M steps; the bench sets it to the run's steps)."""
    update_every: str = "actor"
    """'actor': beta(s) and the n schedule step on the learner's actor updates only (the
    official code: TD3+BC's every second step); 'learner': on every learner step."""
    beta_form: str = "state"
    """'state': each sample's own beta(s) (SSAR); 'uniform': the batch's mean of beta(s)
    over the trusted samples for every sample (the control: no state dependence)."""
    grad_clip: float = 0.5
    """Global grad-norm clip of the beta update."""
    base: float | None = None
    """beta's initial value (None: 1/alpha on TD3+BC, cql_alpha on CQL)."""
    term: str | None = None
    """The learner's loss term beta(s) weights (None: 'bc' on TD3+BC, 'cql' on CQL)."""
    threshold: str | None = None
    """'distance' (deterministic actors) or 'likelihood' (tanh-Gaussian); None: by learner."""
    online_decay: str | None = None
    """Online scaling of beta: 'linear', 'cosine' or 'none' (None: linear TD3+BC, cosine CQL)."""
    online_decay_steps: int | None = None
    """T of the online decay (None: 1.6x the online updates, the official 400k / 250k)."""
    top_trajectories: int = 50
    """Fine-tuning replay 'part': keep this many best offline trajectories."""

    # -- learner binding -------------------------------------------------------------------
    @property
    def pretrain_steps(self) -> int:  # type: ignore[override]
        return self.iql_steps if self.select == "iql" else 0

    def check(self, learner) -> None:
        if self.select not in ("traj", "iql", "none"):
            raise ConfigError(f"ssar.select must be traj, iql or none, got '{self.select}'")
        if self.term is None and learner.name not in ("td3bc", "cql"):
            raise ConfigError(
                f"add-on ssar regularizes TD3+BC or CQL; got {learner.name} "
                "(set ssar.term, base and threshold to use it elsewhere)"
            )
        if learner.name == "td3bc" and learner.config.bc_weight == 0:
            raise ConfigError("add-on ssar needs TD3+BC's BC term (bc_weight > 0)")
        if self.max_n < self.min_n or self.min_n <= 0:
            raise ConfigError("ssar needs 0 < min_n <= max_n")
        if self.update_every not in ("actor", "learner"):
            raise ConfigError(
                f"ssar.update_every must be actor or learner, got '{self.update_every}'"
            )
        if self.beta_form not in ("state", "uniform"):
            raise ConfigError(f"ssar.beta_form must be state or uniform, got '{self.beta_form}'")
        if self.beta_lr_steps <= 0:
            raise ConfigError("ssar.beta_lr_steps must be positive")

    def bind(self, learner) -> SSAR:
        self.check(learner)
        c = learner.config
        if learner.name == "td3bc":
            defaults = dict(base=1.0 / c.alpha, term="bc", threshold="distance", lr=3e-8)
            defaults["online_decay"] = "linear"
        elif learner.name == "cql":
            defaults = dict(base=c.cql_alpha, term="cql", threshold="likelihood", lr=1e-8)
            defaults["online_decay"] = "cosine"
        else:
            defaults = dict(threshold="distance", lr=3e-8, online_decay="linear")
        resolved = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        bound = dataclasses.replace(self, **resolved)
        if bound.base is None or bound.base <= 0:
            raise ConfigError("ssar.base must be positive")
        if bound.threshold == "likelihood" and not hasattr(learner, "policy_dist"):
            raise ConfigError(
                f"ssar's likelihood threshold needs a Gaussian policy; {learner.name}"
            )
        return bound

    @property
    def beta_lr(self) -> float:
        """The learning rate of beta(s) in use: `lr` scaled to the run length."""
        return (self.lr or 3e-8) * OFFICIAL_STEPS / self.beta_lr_steps

    def _beta_net(self) -> BetaNet:
        return BetaNet(tuple(self.hidden), 1.5 * float(self.base))

    def _iql(self, obs_dim: int, act_dim: int):
        from shiftrl.learners.iql import IQL, IQLConfig

        config = IQLConfig(expectile=self.iql_expectile, normalize_reward_by_returns=False)
        return IQL(config, LearnerSpec(obs_dim, act_dim))

    def init(self, rng: jax.Array, spec: LearnerSpec) -> dict:
        k_beta, k_iql = jax.random.split(rng)
        params = self._beta_net().init(k_beta, jnp.zeros((1, spec.obs_dim)))["params"]
        tx = optax.chain(optax.clip_by_global_norm(self.grad_clip), optax.adam(self.beta_lr))
        state = {
            "beta": TrainState.create(apply_fn=None, params=params, tx=tx),
            "n": jnp.asarray(self.min_n, jnp.float32),
            "frozen": jnp.zeros((), bool),
            "step": jnp.zeros((), jnp.int32),
            "scale": jnp.ones((), jnp.float32),
            "online": jnp.zeros((), bool),
        }
        if self.select == "iql":
            state["iql"] = self._iql(spec.obs_dim, spec.act_dim).init(k_iql)
        return state

    # -- the trusted sub-dataset -----------------------------------------------------------
    def annotate(self, dataset, domain: int) -> dict[str, np.ndarray]:
        if self.select != "traj":
            return {}
        returns = dataset.episode_returns()
        if self.trust_return is not None:
            threshold = self.trust_return
        elif self.trust_score is not None and dataset.metadata.ref_min_score is not None:
            lo, hi = dataset.metadata.ref_min_score, dataset.metadata.ref_max_score
            threshold = lo + self.trust_score / 100.0 * (hi - lo)
        else:
            threshold = float(np.quantile(returns, self.trust_quantile))
        trusted = returns > threshold
        if not trusted.any():
            # nothing above the bar: trust the best trajectory rather than no sample at all
            trusted = returns >= returns.max()
        return {TRUST: trusted[dataset.episode_ids()].astype(np.float32)}

    def trust(self, state: dict, batch: Batch) -> jax.Array:
        ones = jnp.ones_like(batch.reward)
        if self.select == "traj":
            flags = batch.extras.get(TRUST, ones)
        elif self.select == "iql":
            iql = self._iql(batch.obs.shape[-1], batch.action.shape[-1])
            adv = iql.advantage(state["iql"], batch.obs, batch.action)
            flags = (adv >= 0).astype(jnp.float32)
        else:
            flags = ones
        return jax.lax.stop_gradient(jnp.where(state["online"], ones, flags))

    # -- the threshold ------------------------------------------------------------------------
    def tolerance_gap(self, n: jax.Array, batch: Batch, ctx: AddOnContext) -> jax.Array:
        """[B], positive where the policy stays within the n-sigma tolerance of the data action."""
        if self.threshold == "distance":
            pi = ctx.learner.act(ctx.learner_state, batch.obs)
            d = jnp.mean(jnp.minimum((pi - batch.action) ** 2, 1.0), axis=-1)
            return (self.sigma * n) ** 2 - d
        mean, log_std = ctx.learner.policy_dist(ctx.learner_state, batch.obs)
        std, center = jnp.exp(log_std), jnp.tanh(mean)

        def boundary(k):  # per-dim log-prob of the k-sigma boundary actions
            def at(sign):
                a = jnp.tanh(mean + sign * k * std)
                a = jnp.clip(a, center - 0.1 * k, center + 0.1 * k)
                return _tanh_normal_log_prob_per_dim(a, mean, log_std)

            return jnp.minimum(at(1.0), at(-1.0))

        log_p = jnp.maximum(
            _tanh_normal_log_prob_per_dim(batch.action, mean, log_std), boundary(10.0)
        )
        return jnp.mean(log_p - boundary(n), axis=-1)

    def beta(self, params, obs: jax.Array) -> jax.Array:
        return self._beta_net().apply({"params": params}, obs)

    # -- the add-on protocol ----------------------------------------------------------------
    def pretrain_update(self, state: dict, batch: Batch, ctx: AddOnContext, rng: jax.Array):
        if self.select != "iql":
            return state, {}
        iql = self._iql(batch.obs.shape[-1], batch.action.shape[-1])
        new, metrics = iql.update_values(state["iql"], batch)
        return {**state, "iql": new}, {f"iql_{k.replace('/', '_')}": v for k, v in metrics.items()}

    def update(self, state: dict, batch: Batch, ctx: AddOnContext, rng: jax.Array):
        trust = self.trust(state, batch)
        gap = jax.lax.stop_gradient(self.tolerance_gap(state["n"], batch, ctx))
        mask = trust if self.select_actions else jnp.ones_like(trust)
        active = (
            ctx.learner.updates_actor(ctx.learner_state)
            if self.update_every == "actor"
            else jnp.asarray(True)
        )

        def loss_fn(params):
            beta = self.beta(params, batch.obs)
            return jnp.mean(gap * beta * mask), beta

        def step_beta(beta_state):
            (loss, beta), grads = jax.value_and_grad(loss_fn, has_aux=True)(beta_state.params)
            return beta_state.apply_gradients(grads=grads), loss, beta

        def hold_beta(beta_state):
            return beta_state, *loss_fn(beta_state.params)

        # a cond, not a select: beta(s) is a 3x512 network, larger than TD3+BC's critics,
        # and its backward pass on the steps that do not use it halved the run's speed
        beta_state, loss, beta = jax.lax.cond(active, step_beta, hold_beta, state["beta"])

        # the n schedule: freeze once the trusted samples meet the threshold on average
        # (checked on the learner step counter, on actor steps only, as the official code)
        step = state["step"] + 1
        trusted_gap = jnp.sum(gap * trust) / jnp.maximum(jnp.sum(trust), 1.0)
        check = (step % self.update_period == 0) & ~state["frozen"] & active
        freeze = check & (trusted_gap > 0)
        increment = (self.max_n - self.min_n) / 10.0
        n = jnp.where(check & ~freeze, jnp.minimum(state["n"] + increment, self.max_n), state["n"])
        new = {**state, "beta": beta_state, "n": n, "frozen": state["frozen"] | freeze}
        new["step"] = step
        b_mean, b_std = masked_mean_std(beta, trust)
        has = jnp.sum(trust) > 0
        metrics = {
            "loss": loss,
            "beta": b_mean,
            "beta_std": b_std,
            "beta_min": jnp.min(jnp.where(trust > 0, beta, jnp.where(has, jnp.inf, 0.0))),
            "beta_max": jnp.max(jnp.where(trust > 0, beta, jnp.where(has, -jnp.inf, 0.0))),
            "beta_updated": active.astype(jnp.float32),
            "n": n,
            "gap": trusted_gap,
            "trusted": jnp.mean(trust),
        }
        return new, metrics

    def weight(self, state: dict, batch: Batch) -> jax.Array:
        """The factor on the learner's weight: beta(s) / base, on trusted samples, scaled online."""
        beta = jax.lax.stop_gradient(self.beta(state["beta"].params, batch.obs))
        trust = self.trust(state, batch)
        if self.beta_form == "uniform":
            mean, _ = masked_mean_std(beta, trust if self.loosen_bound else jnp.ones_like(trust))
            beta = jnp.full_like(beta, mean)
        factor = beta / self.base
        if self.loosen_bound:
            factor = factor * trust
        return factor * state["scale"]

    def _scale_term(self, state, batch, terms, weights):
        if self.term in weights:
            weights = {**weights, self.term: weights[self.term] * self.weight(state, batch)}
        return terms, weights

    def actor_hook(self, state: dict, batch: Batch, terms, weights, rng):
        return self._scale_term(state, batch, terms, weights)

    def critic_hook(self, state: dict, batch: Batch, terms, weights, rng):
        return self._scale_term(state, batch, terms, weights)

    def online_step(self, state: dict, t: jax.Array, total: int) -> dict:
        horizon = self.online_decay_steps or int(1.6 * total)
        frac = t / max(horizon, 1)
        if self.online_decay == "cosine":
            scale = jnp.cos(jnp.minimum(frac, 1.0) * jnp.pi / 2)
        elif self.online_decay == "linear":
            scale = 1.0 - frac  # not floored, as the official code (stays >= 0 for t <= T)
        else:
            scale = jnp.ones(())
        return {**state, "scale": jnp.asarray(scale, jnp.float32), "online": jnp.ones((), bool)}
