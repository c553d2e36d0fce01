"""BEAR: Stabilizing Off-Policy Q-Learning via Bootstrapping Error Reduction (Kumar et al., 2019).

behaviour:  G(s): BCQ's conditional VAE (`nets/vae.py`),
            L_G = mean_j (D(s, z) - a)_j^2 + 0.5 mean_k KL_k(q(z|s, a) || N(0, 1))
critic:     y = r + gamma (1 - d) max_i [0.75 min_j Q'_j(s', a'_i) + 0.25 max_j Q'_j(s', a'_i)],
            a'_i ~ pi'(.|s') (target policy), i = 1..10;   L_Q = sum_j (Q_j(s, a) - y)^2
actor:      u_k = mu(s) + sigma(s) clip(e_k, -0.5, 0.5),  v_k = pre-tanh D(s, z_k),  k = 1..n
            MMD(s) = sqrt(mean k(u, u') + mean k(v, v') - 2 mean k(u, v) + 1e-6),
            k(x, y) = exp(-|x - y|_1 / (2 sigma))  (Laplacian; Gaussian: squared L2)
            L_pi = -min_j mean_k Q_j(s, tanh(u_k)) + alpha MMD(s)     (only alpha MMD in warm-up)
dual:       alpha = exp(log_alpha),  L_alpha = -alpha (MMD(s) - eps),  log_alpha clipped to [-5, 10]
policy:     pi(s) = the tanh(u_i) (i = 1..10, unclipped noise) with the highest Q_1(s, .)

As aviralkumar2907/BEAR (algos.py, `mode=auto`, `version=0`, no ensemble-variance term, which
the README drops): one step updates G, the critics, the actor (with the new critics), the
dual, then Polyak-averages the target critics and the target policy. MMD is taken on
pre-tanh actions. The reference draws the initial log-multiplier from N(0, 1); it starts
at 0 here (its mean). `act` uses noise from a fixed key (deterministic in the state).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import struct
from flax.training.train_state import TrainState

from shiftrl.core.jax_utils import (
    adam_state,
    best_action,
    copy_params,
    polyak,
    soft_clipped_double_q,
)
from shiftrl.core.types import Batch
from shiftrl.learners.base import (
    NO_HOOKS,
    CommonConfig,
    Hooks,
    Learner,
    objective,
    td_critic_loss,
    vae_objective,
)
from shiftrl.nets import VAE, CriticEnsemble, SquashedGaussianActor

ACT_KEY = 0  # the fixed key of `act`'s noise


def mmd(x: jax.Array, y: jax.Array, sigma: float, kernel: str = "laplacian") -> jax.Array:
    """BEAR's per-state sample MMD between x [B, n, A] and y [B, m, A] (V-statistic, with
    the diagonal): sqrt(mean k(x, x') + mean k(y, y') - 2 mean k(x, y) + 1e-6) -> [B]."""

    def mean_k(a, b):
        diff = a[:, :, None, :] - b[:, None, :, :]
        dist = jnp.abs(diff).sum(-1) if kernel == "laplacian" else (diff**2).sum(-1)
        return jnp.exp(-dist / (2.0 * sigma)).mean(axis=(1, 2))

    return jnp.sqrt(mean_k(x, x) + mean_k(y, y) - 2.0 * mean_k(x, y) + 1e-6)


@dataclass(frozen=True)
class BEARConfig(CommonConfig):
    normalize_states: bool = False
    """The reference code trains on raw observations."""
    discount: float = 0.99
    """Discount factor gamma."""
    tau: float = 0.005
    """Polyak rate of the target critics and target policy (every step)."""
    lmbda: float = 0.75
    """lambda of the soft clipped double-Q target (0.75 min + 0.25 max in the reference)."""
    n_target_samples: int = 10
    """Actions sampled from the target policy per next state in the target."""
    n_mmd_samples: int = 5
    """Samples from the policy and from G per state for the MMD (`num_samples_match`)."""
    mmd_kernel: str = "laplacian"
    """'laplacian' (exp(-L1 / 2 sigma)) or 'gaussian' (exp(-L2^2 / 2 sigma))."""
    mmd_sigma: float = 20.0
    """Kernel bandwidth (the reference's default; its README uses 10 with Laplacian on Hopper)."""
    mmd_threshold: float = 0.05
    """epsilon: the dual raises alpha while MMD exceeds it."""
    log_alpha_min: float = -5.0
    """Lower clip of log alpha."""
    log_alpha_max: float = 10.0
    """Upper clip of log alpha (`lagrange_thresh`)."""
    warmup_steps: int = 20_000
    """Initial steps where the actor only minimises alpha MMD (20 epochs of 1000 steps)."""
    n_eval_samples: int = 10
    """Candidates per state when acting (`select_action` repeats the state 10 times)."""
    actor_lr: float = 1e-3
    """Adam learning rate of the policy (PyTorch's default Adam rate in the reference)."""
    critic_lr: float = 1e-3
    """Adam learning rate of the twin critics."""
    vae_lr: float = 1e-3
    """Adam learning rate of the VAE."""
    alpha_lr: float = 1e-3
    """Adam learning rate of log alpha."""
    vae_kl_weight: float = 0.5
    """Weight of the KL term in the VAE loss."""
    latent_dim: int = 0
    """VAE latent size; 0 means 2 * act_dim."""
    log_std_min: float = -5.0
    """Lower end of the policy's log-std range (the reference leaves it unbounded)."""
    log_std_max: float = 2.0
    """Upper end of the policy's log-std range."""
    actor_hidden: tuple[int, ...] = (400, 300)
    """Hidden layer sizes of the policy."""
    critic_hidden: tuple[int, ...] = (400, 300)
    """Hidden layer sizes of each critic."""
    vae_hidden: tuple[int, ...] = (750, 750)
    """Hidden layer sizes of the VAE's encoder and decoder."""


class BEARState(struct.PyTreeNode):
    vae: TrainState
    actor: TrainState
    critic: TrainState
    log_alpha: TrainState
    actor_target: dict
    critic_target: dict
    step: jax.Array


class BEAR(Learner):
    name = "bear"
    Config = BEARConfig
    description = "support matching: MMD to a VAE behaviour model under a Lagrange multiplier"
    paper = "Kumar, Fu, Tucker & Levine, NeurIPS 2019"
    PRESETS = {
        "default": BEARConfig(),
        # README command for Hopper (and the code comment: sigma 10 for hopper / halfcheetah)
        "hopper": BEARConfig(mmd_sigma=10.0),
    }

    def __init__(self, config: BEARConfig, spec):
        super().__init__(config, spec)
        latent = config.latent_dim or 2 * spec.act_dim
        self.vae = VAE(spec.act_dim, latent, config.vae_hidden)
        self.actor_net = SquashedGaussianActor(
            spec.act_dim, config.actor_hidden, config.log_std_min, config.log_std_max
        )
        self.critic_net = CriticEnsemble(2, config.critic_hidden)

    def init(self, rng: jax.Array) -> BEARState:
        c = self.config
        k_vae, k_actor, k_critic = jax.random.split(rng, 3)
        obs = jnp.zeros((1, self.spec.obs_dim))
        act = jnp.zeros((1, self.spec.act_dim))
        actor_params = self.actor_net.init(k_actor, obs)["params"]
        critic_params = self.critic_net.init(k_critic, obs, act)["params"]

        return BEARState(
            vae=adam_state(self.vae.init(k_vae, self.spec.obs_dim), c.vae_lr),
            actor=adam_state(actor_params, c.actor_lr),
            critic=adam_state(critic_params, c.critic_lr),
            log_alpha=adam_state({"value": jnp.zeros(())}, c.alpha_lr),
            actor_target=copy_params(actor_params),
            critic_target=copy_params(critic_params),
            step=jnp.zeros((), jnp.int32),
        )

    # -- networks ---------------------------------------------------------------------
    def raw_samples(self, actor_params, obs, noise):
        """Pre-tanh policy samples u = mu(s) + sigma(s) noise for noise [B, n, A] -> [B, n, A]."""
        mean, log_std = self.actor_net.apply({"params": actor_params}, obs)
        return mean[:, None] + jnp.exp(log_std)[:, None] * noise

    def q(self, params, obs, action):
        return self.critic_net.apply({"params": params}, obs, action)  # [2, ...]

    def repeat(self, obs, n):
        return jnp.broadcast_to(obs[:, None], (obs.shape[0], n, obs.shape[-1]))

    def select(self, state: BEARState, obs: jax.Array, noise: jax.Array) -> jax.Array:
        actions = jnp.tanh(self.raw_samples(state.actor.params, obs, noise))
        q1 = self.q(state.critic.params, self.repeat(obs, noise.shape[1]), actions)[0]
        return best_action(actions, q1)

    def act(self, state: BEARState, obs: jax.Array) -> jax.Array:
        shape = (self.config.n_eval_samples, self.spec.act_dim)
        noise = jax.random.normal(jax.random.PRNGKey(ACT_KEY), shape)
        return self.select(state, obs, jnp.broadcast_to(noise, (obs.shape[0], *shape)))

    def explore(self, state: BEARState, obs: jax.Array, rng: jax.Array) -> jax.Array:
        shape = (obs.shape[0], self.config.n_eval_samples, self.spec.act_dim)
        return self.select(state, obs, jax.random.normal(rng, shape))

    def value(self, state: BEARState, obs: jax.Array) -> jax.Array:
        return self.q(state.critic.params, obs, self.act(state, obs)).min(0)

    def alpha(self, state: BEARState) -> jax.Array:
        return jnp.exp(state.log_alpha.params["value"])

    # -- losses -----------------------------------------------------------------------
    def vae_loss(self, vae_params, batch: Batch, rng):
        return vae_objective(self.vae, vae_params, batch, rng, self.config.vae_kl_weight)

    def td_target(self, state: BEARState, batch: Batch, rng) -> jax.Array:
        c = self.config
        noise = jax.random.normal(rng, (batch.size, c.n_target_samples, self.spec.act_dim))
        next_a = jnp.tanh(self.raw_samples(state.actor_target, batch.next_obs, noise))
        next_obs_n = self.repeat(batch.next_obs, c.n_target_samples)
        next_q = soft_clipped_double_q(self.q(state.critic_target, next_obs_n, next_a), c.lmbda)
        next_v = next_q.max(-1)  # best of the sampled actions
        return jax.lax.stop_gradient(batch.reward + c.discount * (1.0 - batch.terminal) * next_v)

    def critic_loss(self, critic_params, state: BEARState, batch: Batch, rng, hooks: Hooks):
        q = self.q(critic_params, batch.obs, batch.action)
        return td_critic_loss(q, self.td_target(state, batch, rng), batch, hooks)

    def actor_loss(self, actor_params, state: BEARState, batch: Batch, rng, hooks: Hooks):
        c, n = self.config, self.config.n_mmd_samples
        k_pi, k_vae = jax.random.split(rng)
        noise = jnp.clip(jax.random.normal(k_pi, (batch.size, n, self.spec.act_dim)), -0.5, 0.5)
        u = self.raw_samples(actor_params, batch.obs, noise)
        obs_n = self.repeat(batch.obs, n)
        v = self.vae.decode_raw(
            state.vae.params, obs_n, self.vae.prior_draw(k_vae, (batch.size, n))
        )
        divergence = mmd(v, u, c.mmd_sigma, c.mmd_kernel)
        q = self.q(state.critic.params, obs_n, jnp.tanh(u)).mean(-1).min(0)
        warm = state.step < c.warmup_steps
        terms = {"q": q, "mmd": divergence, "pi_action": jnp.tanh(u[:, 0])}
        weights = {"q": jnp.where(warm, 0.0, -1.0), "mmd": jax.lax.stop_gradient(self.alpha(state))}
        terms, weights = hooks.actor(batch, terms, weights)
        loss, metrics = objective(terms, weights, "actor")
        metrics = {**metrics, "actor/alpha": self.alpha(state)}
        return loss, (metrics, jax.lax.stop_gradient(divergence))

    def alpha_loss(self, log_alpha, divergence):
        return -jnp.exp(log_alpha["value"]) * jnp.mean(divergence - self.config.mmd_threshold)

    def dual_step(self, log_alpha: TrainState, divergence: jax.Array) -> TrainState:
        """One Adam step on L_alpha, then log alpha clipped to [log_alpha_min, log_alpha_max]."""
        c = self.config
        dual = log_alpha.apply_gradients(
            grads=jax.grad(self.alpha_loss)(log_alpha.params, divergence)
        )
        clipped = jnp.clip(dual.params["value"], c.log_alpha_min, c.log_alpha_max)
        return dual.replace(params={"value": clipped})

    # -- update -------------------------------------------------------------------------
    def update(self, state: BEARState, batch: Batch, rng, hooks: Hooks = NO_HOOKS):
        c = self.config
        k_vae, k_critic, k_actor = jax.random.split(rng, 3)
        g_vae, m_vae = jax.grad(self.vae_loss, has_aux=True)(state.vae.params, batch, k_vae)
        state = state.replace(vae=state.vae.apply_gradients(grads=g_vae))

        g_q, m_q = jax.grad(self.critic_loss, has_aux=True)(
            state.critic.params, state, batch, k_critic, hooks
        )
        state = state.replace(critic=state.critic.apply_gradients(grads=g_q))

        g_pi, (m_pi, divergence) = jax.grad(self.actor_loss, has_aux=True)(
            state.actor.params, state, batch, k_actor, hooks
        )
        actor = state.actor.apply_gradients(grads=g_pi)

        state = state.replace(
            actor=actor,
            log_alpha=self.dual_step(state.log_alpha, divergence),
            actor_target=polyak(state.actor_target, actor.params, c.tau),
            critic_target=polyak(state.critic_target, state.critic.params, c.tau),
            step=state.step + 1,
        )
        return state, {**m_vae, **m_q, **m_pi}
