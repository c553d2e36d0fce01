"""BCQ: Off-Policy Deep RL without Exploration (Fujimoto, Meger & Precup, ICML 2019), continuous.

generative:    G(s): conditional VAE (`nets/vae.py`), fitted to the data,
               L_G = mean_j (D(s, z) - a)_j^2 + 0.5 mean_k KL_k(q(z|s, a) || N(0, 1))
perturbation:  xi(s, a) = Phi tanh(MLP(s, a)),   a~ = clip(a + xi(s, a), -1, 1),  a ~ G(s)
critic:        y = r + gamma (1 - d) max_i [lambda min_j Q'_j(s', a'_i) + (1 - lambda) max_j Q'_j(s', a'_i)]
               with a'_i = clip(a_i + xi'(s', a_i), -1, 1),  a_i ~ G(s'),  i = 1..10
               L_Q = sum_j (Q_j(s, a) - y)^2
actor:         L_xi = -Q_1(s, a~)
policy:        pi(s) = the a~_i (i = 1..100) with the highest Q_1(s, a~_i)

As sfujim/BCQ (continuous_BCQ/BCQ.py), one step updates G, then the critics (with the new
G), then xi (with the new critics), then Polyak-averages both targets. `act` draws its
latent vectors from a fixed key, so it is a deterministic function of the state;
`explore` draws fresh ones.
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
from shiftrl.nets import VAE, CriticEnsemble, PerturbationActor

ACT_KEY = 0  # the fixed key of `act`'s latent draws


@dataclass(frozen=True)
class BCQConfig(CommonConfig):
    normalize_states: bool = False
    """The reference code trains on raw observations."""
    discount: float = 0.99
    """Discount factor gamma."""
    tau: float = 0.005
    """Polyak rate of the target critics and target perturbation model (every step)."""
    lmbda: float = 0.75
    """lambda of the soft clipped double-Q target: lambda min + (1 - lambda) max."""
    phi: float = 0.05
    """Phi: the perturbation is bounded to Phi * max_action (actions in [-1, 1])."""
    n_target_samples: int = 10
    """Actions sampled from G(s') (and perturbed) per next state in the target."""
    n_eval_samples: int = 100
    """Candidates per state when acting (`select_action` repeats the state 100 times)."""
    actor_lr: float = 1e-3
    """Adam learning rate of the perturbation model xi."""
    critic_lr: float = 1e-3
    """Adam learning rate of the twin critics."""
    vae_lr: float = 1e-3
    """Adam learning rate of the VAE (PyTorch's default Adam rate in the reference)."""
    vae_kl_weight: float = 0.5
    """Weight of the KL term in the VAE loss."""
    latent_dim: int = 0
    """VAE latent size; 0 means 2 * act_dim."""
    actor_hidden: tuple[int, ...] = (400, 300)
    """Hidden layer sizes of the perturbation model."""
    critic_hidden: tuple[int, ...] = (400, 300)
    """Hidden layer sizes of each critic."""
    vae_hidden: tuple[int, ...] = (750, 750)
    """Hidden layer sizes of the VAE's encoder and decoder."""


class BCQState(struct.PyTreeNode):
    vae: TrainState
    actor: TrainState
    critic: TrainState
    actor_target: dict
    critic_target: dict
    step: jax.Array


class BCQ(Learner):
    name = "bcq"
    Config = BCQConfig
    description = (
        "batch-constrained Q-learning: VAE samples, bounded perturbation, soft clipped double Q"
    )
    paper = "Fujimoto, Meger & Precup, ICML 2019"
    PRESETS = {"default": BCQConfig()}

    def __init__(self, config: BCQConfig, spec):
        super().__init__(config, spec)
        latent = config.latent_dim or 2 * spec.act_dim
        self.vae = VAE(spec.act_dim, latent, config.vae_hidden)
        self.actor_net = PerturbationActor(spec.act_dim, config.actor_hidden, config.phi)
        self.critic_net = CriticEnsemble(2, config.critic_hidden)

    def init(self, rng: jax.Array) -> BCQState:
        c = self.config
        k_vae, k_actor, k_critic = jax.random.split(rng, 3)
        obs = jnp.zeros((1, self.spec.obs_dim))
        act = jnp.zeros((1, self.spec.act_dim))
        actor_params = self.actor_net.init(k_actor, obs, act)["params"]
        critic_params = self.critic_net.init(k_critic, obs, act)["params"]

        return BCQState(
            vae=adam_state(self.vae.init(k_vae, self.spec.obs_dim), c.vae_lr),
            actor=adam_state(actor_params, c.actor_lr),
            critic=adam_state(critic_params, c.critic_lr),
            actor_target=copy_params(actor_params),
            critic_target=copy_params(critic_params),
            step=jnp.zeros((), jnp.int32),
        )

    # -- networks ---------------------------------------------------------------------
    def perturb(self, params, obs, action):
        return self.actor_net.apply({"params": params}, obs, action)

    def q(self, params, obs, action):
        return self.critic_net.apply({"params": params}, obs, action)  # [2, ...]

    def candidates(self, vae_params, actor_params, obs, z):
        """Perturbed VAE actions for latents z [B, n, latent] -> (obs [B, n, S], actions [B, n, A])."""
        obs_n = jnp.broadcast_to(obs[:, None], (*z.shape[:2], obs.shape[-1]))
        return obs_n, self.perturb(actor_params, obs_n, self.vae.decode(vae_params, obs_n, z))

    def select(self, state: BCQState, obs: jax.Array, z: jax.Array) -> jax.Array:
        obs_n, actions = self.candidates(state.vae.params, state.actor.params, obs, z)
        return best_action(actions, self.q(state.critic.params, obs_n, actions)[0])

    def act(self, state: BCQState, obs: jax.Array) -> jax.Array:
        z = self.vae.prior_draw(jax.random.PRNGKey(ACT_KEY), (self.config.n_eval_samples,))
        return self.select(state, obs, jnp.broadcast_to(z, (obs.shape[0], *z.shape)))

    def explore(self, state: BCQState, obs: jax.Array, rng: jax.Array) -> jax.Array:
        return self.select(
            state, obs, self.vae.prior_draw(rng, (obs.shape[0], self.config.n_eval_samples))
        )

    def value(self, state: BCQState, obs: jax.Array) -> jax.Array:
        return self.q(state.critic.params, obs, self.act(state, obs)).min(0)

    # -- losses -----------------------------------------------------------------------
    def vae_loss(self, vae_params, batch: Batch, rng):
        return vae_objective(self.vae, vae_params, batch, rng, self.config.vae_kl_weight)

    def td_target(self, state: BCQState, batch: Batch, rng) -> jax.Array:
        c = self.config
        z = self.vae.prior_draw(rng, (batch.size, c.n_target_samples))
        next_obs_n, next_a = self.candidates(
            state.vae.params, state.actor_target, batch.next_obs, z
        )
        next_q = soft_clipped_double_q(self.q(state.critic_target, next_obs_n, next_a), c.lmbda)
        next_v = next_q.max(-1)  # best of the sampled actions
        return jax.lax.stop_gradient(batch.reward + c.discount * (1.0 - batch.terminal) * next_v)

    def critic_loss(self, critic_params, state: BCQState, batch: Batch, rng, hooks: Hooks):
        q = self.q(critic_params, batch.obs, batch.action)
        return td_critic_loss(q, self.td_target(state, batch, rng), batch, hooks)

    def actor_loss(self, actor_params, state: BCQState, batch: Batch, rng, hooks: Hooks):
        sampled = self.vae.sample(state.vae.params, batch.obs, rng)
        pi = self.perturb(actor_params, batch.obs, sampled)
        q1 = self.q(state.critic.params, batch.obs, pi)[0]
        terms = {"q": q1, "pi_action": pi}
        terms, weights = hooks.actor(batch, terms, {"q": -1.0})
        loss, metrics = objective(terms, weights, "actor")
        return loss, {**metrics, "actor/perturbation": jnp.abs(pi - sampled).mean()}

    # -- update -------------------------------------------------------------------------
    def update(self, state: BCQState, batch: Batch, rng, hooks: Hooks = NO_HOOKS):
        k_vae, k_critic, k_actor = jax.random.split(rng, 3)
        g_vae, m_vae = jax.grad(self.vae_loss, has_aux=True)(state.vae.params, batch, k_vae)
        state = state.replace(vae=state.vae.apply_gradients(grads=g_vae))

        g_q, m_q = jax.grad(self.critic_loss, has_aux=True)(
            state.critic.params, state, batch, k_critic, hooks
        )
        state = state.replace(critic=state.critic.apply_gradients(grads=g_q))

        g_pi, m_pi = jax.grad(self.actor_loss, has_aux=True)(
            state.actor.params, state, batch, k_actor, hooks
        )
        actor, tau = state.actor.apply_gradients(grads=g_pi), self.config.tau
        state = state.replace(
            actor=actor,
            actor_target=polyak(state.actor_target, actor.params, tau),
            critic_target=polyak(state.critic_target, state.critic.params, tau),
            step=state.step + 1,
        )
        return state, {**m_vae, **m_q, **m_pi}
