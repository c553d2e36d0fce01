"""MOREC's dynamics reward r_D(s, a, s'): networks, data scaling, the calibrated merge.

The structure follows the released consumer code (polixir/morec `models/`): the dynamics
is an agent whose "state" is (s, z, a) (z: a hidden-factor channel, zeros when there is
none) and whose "action" is the state change s' - s. A discriminator scores a transition
from two encodings,

    logit = D( enc_state(s, z, a), enc_delta(s' - s) ),

enc_state: MLP -> [256, 128] -> 64 and enc_delta: MLP -> [256, 128] -> 16, ReLU on every
layer including the output (as the released `rnn_base`). Inputs are scaled as the
released data loader: states min-max to [-0.8, 0.8] (next states with the same min / max),
actions to [-1, 1].

Training keeps a history of discriminator snapshots, each with two calibration values:
`expert` (its mean logit on data transitions) and `learner` (its mean logit on the
generator's). The reward of a candidate merges the kept snapshots k:

    p_k = sigmoid( rescale_k( clip(logit_k, learner_k, expert_k) ) ),  rescale_k -> [-1, 1]
    r_D = -log( 1 - mean_k clip(p_k, 0, d_clip) )

(`prob_mean_clip` in the released code, with its `load_min_max=False` range of 2), so
r_D lies in [-log(1 - sigmoid(-1)), -log(1 - sigmoid(1))] = [0.313, 1.313] for d_clip = 1.
Snapshots whose expert value is not above their learner value carry no ranking and are
masked, as the released code drops snapshots without a middle value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from shiftrl.core.errors import ConfigError

Params = dict[str, Any]
SELECTION_RULES = ("select", "softmax")
TIE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class RewardConfig:
    """Settings of the dynamics reward and its adversarial training (see docs/methods.md,
    MOREC: which values are the released code's and which are this reconstruction's)."""

    state_encoder: tuple[int, ...] = (256, 128, 64)
    """enc_state widths, the last one its output (released: [256, 128] -> 64)."""
    delta_encoder: tuple[int, ...] = (256, 128, 16)
    """enc_delta widths, the last one its output (released: [256, 128] -> 16)."""
    discriminator: tuple[int, ...] = (256, 256)
    """Hidden widths of D on the concatenated encodings (tanh; not in the released code)."""
    generator: tuple[int, ...] = (256, 256)
    """Hidden widths of the dynamics "policy" P(s' - s | s, z, a), a Gaussian MLP (ReLU)."""
    z_dim: int = 0
    """Width of the hidden-factor channel z (0: none, the MuJoCo setting)."""
    iterations: int = 10_000
    """Adversarial iterations, each one discriminator and one generator update."""
    pretrain_steps: int = 0
    """Maximum-likelihood steps of the generator before the adversarial phase (0: the game
    starts from a random generator, so the kept snapshots span coarse to fine)."""
    batch_size: int = 256
    disc_lr: float = 3e-4
    gen_lr: float = 3e-5
    gen_samples: int = 4
    """Samples of s' - s per row for the generator's policy gradient (their mean reward is
    the baseline)."""
    entropy_coef: float = 1e-3
    """Entropy bonus of the generator (the released class starts its coefficient at 1e-3)."""
    snapshot_every: int = 250
    """Iterations between discriminator snapshots (one compiled chunk)."""
    ensemble_size: int = 40
    """Snapshots kept, the latest ones (MOREC-MOPO merges 40, every 10th of the last 400);
    with the defaults they span the whole run (10,000 / 250 = 40)."""
    calibration_rows: int = 2048
    """Data rows (fixed) on which each snapshot's expert / learner values are measured."""
    obs_scale: float = 0.8
    """States are min-max scaled to [-obs_scale, obs_scale]."""
    d_clip: float = 1.0
    """Upper clip of each snapshot's probability before the mean (released runs: 1.0)."""
    min_gap: float = 0.2
    """Snapshots count in the merge only when expert - learner > min_gap (released: > 0, as
    it drops uncalibrated snapshots; a near-zero gap rescales noise to the full [-1, 1])."""

    def __post_init__(self) -> None:
        checks = [
            (len(self.state_encoder) >= 1 and min(self.state_encoder) >= 1, "state_encoder"),
            (len(self.delta_encoder) >= 1 and min(self.delta_encoder) >= 1, "delta_encoder"),
            (all(w >= 1 for w in self.discriminator), "discriminator widths"),
            (all(w >= 1 for w in self.generator), "generator widths"),
            (self.z_dim >= 0, "z_dim must be >= 0"),
            (
                self.iterations >= self.snapshot_every >= 1,
                "needs iterations >= snapshot_every >= 1",
            ),
            (self.pretrain_steps >= 0, "pretrain_steps must be >= 0"),
            (self.batch_size >= 2 and self.gen_samples >= 2, "batch_size, gen_samples >= 2"),
            (self.ensemble_size >= 1, "ensemble_size must be positive"),
            (self.calibration_rows >= 1, "calibration_rows must be positive"),
            (self.obs_scale > 0 and 0 < self.d_clip <= 1, "obs_scale > 0 and d_clip in (0, 1]"),
            (min(self.disc_lr, self.gen_lr) > 0 and self.entropy_coef >= 0, "learning rates"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"dynamics-reward: {msg}")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RewardConfig:
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown dynamics-reward setting {unknown[0]!r}; valid keys: {', '.join(known)}"
            )
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kw)

    def with_overrides(self, items: list[str]) -> RewardConfig:
        """This config with `key=value` strings applied (widths as `64,64`)."""
        data = self.to_json()
        for item in items:
            key, _, raw = item.partition("=")
            key, raw = key.strip(), raw.strip()
            if not _ or key not in data:
                raise ConfigError(
                    f"--set {item}: expected key=value with key one of {', '.join(data)}"
                )
            try:
                if isinstance(data[key], tuple):
                    data[key] = tuple(int(p) for p in raw.strip("()").split(",") if p.strip())
                elif isinstance(data[key], int):
                    data[key] = int(float(raw)) if float(raw).is_integer() else _bad(item)
                else:
                    data[key] = float(raw)
            except ValueError:
                _bad(item)
        return RewardConfig.from_json(data)


def _bad(item: str):
    raise ConfigError(f"--set {item}: not a valid value")


# -- networks -------------------------------------------------------------------------------


def init_mlp(rng: jax.Array, sizes: tuple[int, ...]) -> list[dict]:
    """Layers of an MLP with `sizes` = (in, hidden..., out): LeCun-normal weights, zero bias."""
    keys = jax.random.split(rng, len(sizes) - 1)
    return [
        {
            "w": jax.random.normal(k, (fan_in, fan_out)) / np.sqrt(fan_in),
            "b": jnp.zeros(fan_out),
        }
        for k, fan_in, fan_out in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def mlp(layers: list[dict], x: jax.Array, act=jax.nn.relu, act_last: bool = False) -> jax.Array:
    for i, layer in enumerate(layers):
        x = x @ layer["w"] + layer["b"]
        if i < len(layers) - 1 or act_last:
            x = act(x)
    return x


def init_discriminator(rng: jax.Array, config: RewardConfig, obs_dim: int, act_dim: int):
    k_s, k_d, k_h = jax.random.split(rng, 3)
    state_in = obs_dim + config.z_dim + act_dim
    head_in = config.state_encoder[-1] + config.delta_encoder[-1]
    return {
        "enc_state": init_mlp(k_s, (state_in, *config.state_encoder)),
        "enc_delta": init_mlp(k_d, (obs_dim, *config.delta_encoder)),
        "head": init_mlp(k_h, (head_in, *config.discriminator, 1)),
    }


def discriminator_logit(params: Params, state_in: jax.Array, delta: jax.Array) -> jax.Array:
    """D's logit for scaled inputs: state_in = [s, z, a] (..., in), delta = s' - s -> (...)."""
    h_state = mlp(params["enc_state"], state_in, act_last=True)
    h_delta = mlp(params["enc_delta"], delta, act_last=True)
    lead = jnp.broadcast_shapes(h_state.shape[:-1], h_delta.shape[:-1])
    h = jnp.concatenate(
        [
            jnp.broadcast_to(h_state, (*lead, h_state.shape[-1])),
            jnp.broadcast_to(h_delta, (*lead, h_delta.shape[-1])),
        ],
        axis=-1,
    )
    return mlp(params["head"], h, act=jnp.tanh)[..., 0]


def init_generator(rng: jax.Array, config: RewardConfig, obs_dim: int, act_dim: int):
    return {
        "net": init_mlp(rng, (obs_dim + config.z_dim + act_dim, *config.generator, 2 * obs_dim))
    }


LOG_STD_MIN, LOG_STD_MAX = -7.0, 0.0


def generator_dist(params: Params, state_in: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and log-std of the generator's Gaussian over the scaled s' - s."""
    mean, log_std = jnp.split(mlp(params["net"], state_in), 2, axis=-1)
    return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


def gaussian_log_prob(x: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    z = (x - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)


# -- the trained reward -----------------------------------------------------------------------


class Scaling(struct.PyTreeNode):
    """The released data loader's scaling, fitted on the training data."""

    obs_low: jax.Array
    obs_high: jax.Array
    act_low: jax.Array
    act_high: jax.Array
    obs_scale: float = struct.field(pytree_node=False, default=0.8)

    @classmethod
    def fit(cls, observations, actions, next_observations, obs_scale: float = 0.8) -> Scaling:
        states = np.concatenate([observations, next_observations])
        return cls(
            obs_low=jnp.asarray(states.min(0), jnp.float32),
            obs_high=jnp.asarray(states.max(0), jnp.float32),
            act_low=jnp.asarray(np.min(actions, 0), jnp.float32),
            act_high=jnp.asarray(np.max(actions, 0), jnp.float32),
            obs_scale=obs_scale,
        )

    def obs(self, x: jax.Array) -> jax.Array:
        span = jnp.where(self.obs_high > self.obs_low, self.obs_high - self.obs_low, 1.0)
        return ((x - self.obs_low) / span * 2.0 - 1.0) * self.obs_scale

    def action(self, a: jax.Array) -> jax.Array:
        span = jnp.where(self.act_high > self.act_low, self.act_high - self.act_low, 1.0)
        return (a - self.act_low) / span * 2.0 - 1.0

    def inputs(self, obs, action, next_obs, z=None) -> tuple[jax.Array, jax.Array]:
        """(state_in [s, z, a], delta s' - s), scaled, for raw arrays (..., d)."""
        s = self.obs(obs)
        parts = [s] + ([] if z is None else [z]) + [self.action(action)]
        return jnp.concatenate(parts, axis=-1), self.obs(next_obs) - s


class DynamicsReward(struct.PyTreeNode):
    """Stacked discriminator snapshots (leading axis K, oldest first) with their calibration
    and the data scaling; a pytree whose config and sizes are static."""

    snapshots: Params
    expert: jax.Array  # [K] mean logit on data transitions
    learner: jax.Array  # [K] mean logit on generator transitions
    scaling: Scaling
    config: RewardConfig = struct.field(pytree_node=False)
    obs_dim: int = struct.field(pytree_node=False)
    act_dim: int = struct.field(pytree_node=False)

    @property
    def size(self) -> int:
        return int(self.expert.shape[0])

    def usable(self, use_every: int = 1) -> jax.Array:
        """[K] mask: calibrated snapshots, the newest and then every `use_every`-th back (the
        released `ensemble_choosing_interval` over the kept history)."""
        back = jnp.arange(self.size)[::-1]
        return (self.expert - self.learner > self.config.min_gap) & (back % use_every == 0)


def snapshot_logits(model: DynamicsReward, obs, action, next_obs, z=None) -> jax.Array:
    """Every snapshot's logit for raw transitions (..., d) -> [K, ...]."""
    if z is None and model.config.z_dim:
        z = jnp.zeros((*obs.shape[:-1], model.config.z_dim), obs.dtype)
    state_in, delta = model.scaling.inputs(obs, action, next_obs, z)
    # one snapshot at a time: 40 snapshots x 10 candidates x a rollout batch of hidden
    # activations would not fit in memory at once; the [K, ...] logits are small
    return jax.lax.map(lambda params: discriminator_logit(params, state_in, delta), model.snapshots)


def merge_logits(
    logits: jax.Array, expert: jax.Array, learner: jax.Array, mask: jax.Array, d_clip: float = 1.0
) -> jax.Array:
    """r = -log(1 - mean_k clip(sigmoid(rescale_k(clip(logit_k))), 0, d_clip)) over the
    snapshots where `mask`; logits [K, ...], expert / learner / mask [K] -> [...]."""
    shape = (-1,) + (1,) * (logits.ndim - 1)
    lo, hi = learner.reshape(shape), expert.reshape(shape)
    span = jnp.where(hi > lo, hi - lo, 1.0)
    rescaled = (jnp.clip(logits, lo, hi) - lo) / span * 2.0 - 1.0
    p = jnp.clip(jax.nn.sigmoid(rescaled), 0.0, d_clip)
    weight = mask.astype(p.dtype).reshape(shape)
    mean_p = jnp.sum(p * weight, axis=0) / jnp.maximum(jnp.sum(weight, axis=0), 1.0)
    return -jnp.log1p(-jnp.minimum(mean_p, 1.0 - 1e-6))


def dynamics_reward(
    model: DynamicsReward, obs, action, next_obs, z=None, use_every: int = 1
) -> jax.Array:
    """r_D for raw transitions (..., d) -> (...)."""
    logits = snapshot_logits(model, obs, action, next_obs, z)
    return merge_logits(
        logits, model.expert, model.learner, model.usable(use_every), model.config.d_clip
    )


def select_candidates(
    scores: jax.Array, rule: str, rng: jax.Array, kappa: float = 0.1
) -> jax.Array:
    """Per column, the chosen candidate index from scores [C, B] -> [B]: the highest
    ("select", MOREC's select_elite) or a draw from softmax(scores / kappa) ("softmax",
    softmax_elite; the released code's factor 10 is kappa = 0.1).

    Ties for the highest score are broken uniformly at random. They are common: every
    snapshot's logit is clipped at its expert value, so candidates at least as plausible as
    the typical data transition all score the maximum, and a first-index argmax (the
    released code's) would then always pick the first elite's sample."""
    if rule == "select":
        best = scores >= jnp.max(scores, axis=0, keepdims=True) - TIE_TOLERANCE
        return jax.random.categorical(rng, jnp.where(best, 0.0, -jnp.inf), axis=0)
    if rule == "softmax":
        return jax.random.categorical(rng, scores / kappa, axis=0)
    raise ConfigError(f"unknown selection rule {rule!r}; choose from {', '.join(SELECTION_RULES)}")
