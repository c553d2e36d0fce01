"""A probabilistic dynamics ensemble, as in the MOPO / MOBILE reference code (OfflineRL-Kit).

Each of `members` Gaussian MLPs maps a standardized [s, a] to the mean and log-variance of
[s' - s, r] (targets are not normalized). The members are one network with a leading
member axis: `jax.vmap` of one member's forward, so a forward pass or a training step for
all members is a single compiled program.

- Architecture: `hidden` Swish layers (default 4 x 200); weights truncated normal with
  std 1 / (2 sqrt(fan_in)), biases 0.
- Log-variance soft bounds: learned `max_logvar` (init 0.5) and `min_logvar` (init -10),
  one per output, shared by the members;
  logvar = min + softplus(max - softplus(max - x) - min), so gradients pass through.
- Loss per member: mean((mu - y)^2 exp(-logvar)) + mean(logvar); summed over members, plus
  per-layer weight decay wd_l * 0.5 * ||W_l||^2 (biases excluded) and
  0.01 * (sum max_logvar - sum min_logvar).
- Training (`train_ensemble`): inputs standardized with the training split's mean / std;
  a random held-out split of min(20%, 1000) transitions; each member trains on its own
  bootstrap resample of the training split, reshuffled every epoch; Adam (lr 1e-3), batch
  256. One epoch is one jit-compiled `lax.scan` over batches. After each epoch every
  member's held-out MSE of the mean is measured; a member whose MSE improved by more than
  1% (relative) is snapshotted. Training stops when no member improved for
  `max_epochs_since_update` (5) epochs, or at `max_epochs`. The snapshots are restored
  and the `elites` (5) members with the lowest held-out MSE are chosen.

A `DynamicsModel` is a pytree (parameters, input statistics, elites, held-out MSE) whose
config and sizes are static, so it is passed to jitted functions as an argument.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from shiftrl.core.errors import ConfigError, DataError

Params = dict[str, Any]

KIT_DECAYS = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)


@dataclass(frozen=True)
class EnsembleConfig:
    """Settings of the dynamics ensemble and its training (defaults: MOPO / MOBILE)."""

    members: int = 7
    """Gaussian networks in the ensemble."""
    elites: int = 5
    """Members with the lowest held-out MSE, used to generate model transitions."""
    hidden: tuple[int, ...] = (200, 200, 200, 200)
    """Hidden layer widths (Swish activations)."""
    weight_decay: tuple[float, ...] | None = None
    """Decay per layer (hidden layers, then output); None: OfflineRL-Kit's
    (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4) for 4 hidden layers, else evenly spaced over
    the same range."""
    lr: float = 1e-3
    batch_size: int = 256
    holdout_fraction: float = 0.2
    max_holdout: int = 1000
    """The held-out split is min(holdout_fraction * N, max_holdout) transitions."""
    max_epochs: int | None = None
    """Stop after this many epochs at the latest (None: only early stopping)."""
    max_epochs_since_update: int = 5
    """Early stopping: epochs without a member improving its held-out MSE."""
    improvement: float = 0.01
    """Relative held-out MSE decrease that counts as an improvement (and snapshots)."""
    logvar_bound_coef: float = 0.01
    """Weight of sum(max_logvar) - sum(min_logvar) in the loss (keeps the bounds tight)."""
    init_max_logvar: float = 0.5
    init_min_logvar: float = -10.0

    def __post_init__(self) -> None:
        checks = [
            (self.members >= 1, "members must be at least 1"),
            (1 <= self.elites <= self.members, "elites must be between 1 and members"),
            (len(self.hidden) >= 1 and min(self.hidden) >= 1, "hidden needs positive widths"),
            (
                self.weight_decay is None or len(self.weight_decay) == len(self.hidden) + 1,
                f"weight_decay needs {len(self.hidden) + 1} values (hidden layers + output)",
            ),
            (self.lr > 0, "lr must be positive"),
            (self.batch_size >= 1, "batch_size must be positive"),
            (0.0 < self.holdout_fraction < 1.0, "holdout_fraction must be in (0, 1)"),
            (self.max_holdout >= 1, "max_holdout must be positive"),
            (self.max_epochs is None or self.max_epochs >= 1, "max_epochs must be positive"),
            (self.max_epochs_since_update >= 1, "max_epochs_since_update must be positive"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"dynamics: {msg}")

    @property
    def layer_decays(self) -> tuple[float, ...]:
        if self.weight_decay is not None:
            return tuple(self.weight_decay)
        n = len(self.hidden) + 1
        return KIT_DECAYS if n == len(KIT_DECAYS) else tuple(np.linspace(2.5e-5, 1e-4, n))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EnsembleConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown dynamics setting {unknown[0]!r}; valid keys: {', '.join(sorted(known))}"
            )
        kw = dict(data)
        for key in ("hidden", "weight_decay"):
            if kw.get(key) is not None:
                kw[key] = tuple(kw[key])
        return cls(**kw)

    def with_overrides(self, items: dict[str, Any] | list[str]) -> EnsembleConfig:
        """This config with `key=value` strings (or a dict) applied, parsed by field type."""
        pairs = items.items() if isinstance(items, dict) else [_split(s) for s in items]
        data = self.to_json()
        for key, raw in pairs:
            if key not in data:
                valid = ", ".join(sorted(data))
                raise ConfigError(f"unknown dynamics setting {key!r}; valid keys: {valid}")
            data[key] = _parse(key, raw, self) if isinstance(raw, str) else raw
        return EnsembleConfig.from_json(data)


def _split(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got '{item}'")
    key, value = item.split("=", 1)
    return key.strip(), value.strip()


def _parse(key: str, raw: str, config: EnsembleConfig) -> Any:
    try:
        if key in ("hidden", "weight_decay"):
            if key == "weight_decay" and raw.lower() == "none":
                return None
            parts = [p for p in raw.strip("()").split(",") if p.strip()]
            return tuple(int(p) if key == "hidden" else float(p) for p in parts)
        if key == "max_epochs":
            return None if raw.lower() == "none" else int(raw)
        default = getattr(config, key)
        if isinstance(default, int):
            f = float(raw)
            if not f.is_integer():
                raise ValueError
            return int(f)
        return float(raw)
    except ValueError:
        raise ConfigError(f"--set {key}={raw}: not a valid value") from None


# -- the network --------------------------------------------------------------------------


class DynamicsModel(struct.PyTreeNode):
    """A trained (or freshly initialized) ensemble; a pytree whose sizes are static."""

    params: Params
    input_mean: jax.Array  # [obs_dim + act_dim]
    input_std: jax.Array
    elites: jax.Array  # [config.elites] int32, member indices, best first
    holdout_mse: jax.Array  # [members], held-out MSE of each member's mean
    config: EnsembleConfig = struct.field(pytree_node=False)
    obs_dim: int = struct.field(pytree_node=False)
    act_dim: int = struct.field(pytree_node=False)

    @property
    def out_dim(self) -> int:
        return self.obs_dim + 1


def init_params(config: EnsembleConfig, obs_dim: int, act_dim: int, rng: jax.Array) -> Params:
    sizes = (obs_dim + act_dim, *config.hidden, 2 * (obs_dim + 1))
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        std = 1.0 / (2.0 * np.sqrt(fan_in))
        w = jax.random.truncated_normal(
            jax.random.fold_in(rng, i), -2.0, 2.0, (config.members, fan_in, fan_out)
        )
        layers.append({"w": w * std, "b": jnp.zeros((config.members, fan_out))})
    return {
        "layers": layers,
        "max_logvar": jnp.full((obs_dim + 1,), config.init_max_logvar),
        "min_logvar": jnp.full((obs_dim + 1,), config.init_min_logvar),
    }


def _member_forward(layers: list[dict], max_lv, min_lv, x: jax.Array):
    """One member: standardized inputs [B, in] -> (mean [B, out], logvar [B, out])."""
    for layer in layers[:-1]:
        x = jax.nn.swish(x @ layer["w"] + layer["b"])
    out = x @ layers[-1]["w"] + layers[-1]["b"]
    mean, logvar = jnp.split(out, 2, axis=-1)
    logvar = max_lv - jax.nn.softplus(max_lv - logvar)
    logvar = min_lv + jax.nn.softplus(logvar - min_lv)
    return mean, logvar


def forward(params: Params, x: jax.Array, shared_input: bool = True):
    """All members at once. x: [B, in] (shared_input) or [members, B, in] (one batch per
    member). Returns mean and logvar of [delta s, r], each [members, B, obs_dim + 1]."""
    member = partial(_member_forward, max_lv=params["max_logvar"], min_lv=params["min_logvar"])
    axes = (0, None if shared_input else 0)
    return jax.vmap(lambda layers, xs: member(layers, x=xs), in_axes=axes)(params["layers"], x)


def normalize_inputs(model: DynamicsModel, obs: jax.Array, action: jax.Array) -> jax.Array:
    return (jnp.concatenate([obs, action], axis=-1) - model.input_mean) / model.input_std


@jax.jit
def predict(model: DynamicsModel, obs: jax.Array, action: jax.Array):
    """Every member's Gaussian over (s', r): (mean [E, B, obs_dim + 1], logvar [E, B, ...]),
    the state part of the mean already has s added (it is s', not s' - s)."""
    mean, logvar = forward(model.params, normalize_inputs(model, obs, action))
    return mean.at[..., :-1].add(obs), logvar


UNCERTAINTY_MODES = ("aleatoric", "pairwise-diff", "ensemble-std")


def uncertainty(mean: jax.Array, logvar: jax.Array, mode: str = "aleatoric") -> jax.Array:
    """MOPO's uncertainty per row from every member's (mean, logvar) [E, B, obs_dim + 1]:

    - "aleatoric" (MOPO's default): max_k ||sigma_k||_2, reward dimension included;
    - "pairwise-diff": max_k ||mu_k - mean_j mu_j||_2 over the state dimensions;
    - "ensemble-std": sqrt(mean over state dimensions of the members' variance of mu).
    All members count, elites or not (as OfflineRL-Kit)."""
    if mode == "aleatoric":
        return jnp.max(jnp.linalg.norm(jnp.exp(0.5 * logvar), axis=-1), axis=0)
    states = mean[..., :-1]
    if mode == "pairwise-diff":
        return jnp.max(jnp.linalg.norm(states - states.mean(axis=0), axis=-1), axis=0)
    if mode == "ensemble-std":
        return jnp.sqrt(states.var(axis=0).mean(axis=-1))
    raise ConfigError(f"unknown uncertainty {mode!r}; choose from {', '.join(UNCERTAINTY_MODES)}")


def random_elites(model: DynamicsModel, rng: jax.Array, n: int) -> jax.Array:
    """[n] ensemble indices, each a uniformly drawn elite."""
    return model.elites[jax.random.randint(rng, (n,), 0, model.elites.shape[0])]


@partial(jax.jit, static_argnames="mode")
def sample_step(
    model: DynamicsModel,
    obs: jax.Array,
    action: jax.Array,
    rng: jax.Array,
    mode: str = "aleatoric",
    members: jax.Array | None = None,
):
    """One model transition per row, as MOPO: each member samples mean + std * noise, then a
    random elite is chosen per row (per step, not per trajectory), or the given `members`
    ([B] ensemble indices: MAPLE keeps one elite per trajectory). Returns (next_obs [B, d],
    reward [B], uncertainty [B]) with the uncertainty of `mode` (see `uncertainty`)."""
    mean, logvar = predict(model, obs, action)
    std = jnp.exp(0.5 * logvar)
    k_noise, k_pick = jax.random.split(rng)
    samples = mean + std * jax.random.normal(k_noise, mean.shape)
    pick = members if members is not None else random_elites(model, k_pick, obs.shape[0])
    chosen = samples[pick, jnp.arange(obs.shape[0])]
    return chosen[:, :-1], chosen[:, -1], uncertainty(mean, logvar, mode)


# -- training -----------------------------------------------------------------------------


def loss_fn(params: Params, x: jax.Array, y: jax.Array, config: EnsembleConfig):
    """The Gaussian NLL (up to constants) of every member on its own batch ([E, B, in],
    [E, B, out]) plus weight decay and the log-variance-bound term."""
    mean, logvar = forward(params, x, shared_input=False)
    nll = jnp.mean((mean - y) ** 2 * jnp.exp(-logvar), axis=(1, 2)) + jnp.mean(logvar, axis=(1, 2))
    decay = sum(
        wd * 0.5 * jnp.sum(layer["w"] ** 2)
        for wd, layer in zip(config.layer_decays, params["layers"], strict=True)
    )
    bounds = config.logvar_bound_coef * (
        jnp.sum(params["max_logvar"]) - jnp.sum(params["min_logvar"])
    )
    return jnp.sum(nll) + decay + bounds


def _optimizer(config: EnsembleConfig) -> optax.GradientTransformation:
    return optax.adam(config.lr)


@partial(jax.jit, static_argnames=("config", "batch_size"), donate_argnums=(0, 1))
def train_epoch(
    params: Params,
    opt_state: Any,
    boot: jax.Array,
    inputs: jax.Array,
    targets: jax.Array,
    rng: jax.Array,
    config: EnsembleConfig,
    batch_size: int,
):
    """One epoch for all members: each shuffles its bootstrap rows `boot` [E, N] and takes
    N // batch_size Adam steps, fused in one `lax.scan`. Returns (params, opt_state,
    mean loss)."""
    members, n = boot.shape
    keys = jax.random.split(rng, members)
    rows = jax.vmap(jax.random.permutation)(keys, boot)
    n_batches = n // batch_size
    batches = rows[:, : n_batches * batch_size].reshape(members, n_batches, batch_size)
    tx = _optimizer(config)

    def step(carry, idx):  # idx [E, batch]
        params, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params, inputs[idx], targets[idx], config)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(
        step, (params, opt_state), jnp.swapaxes(batches, 0, 1)
    )
    return params, opt_state, jnp.mean(losses)


@jax.jit
def member_mse(params: Params, inputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Each member's MSE of its mean on standardized `inputs` ([N, in]) -> [E]."""
    mean, _ = forward(params, inputs)
    return jnp.mean((mean - targets) ** 2, axis=(1, 2))


@jax.jit
def _keep_improved(best: list[dict], new: list[dict], improved: jax.Array) -> list[dict]:
    """Per member: the new layer weights where `improved`, else the snapshot."""

    def pick(b, n):
        mask = improved.reshape((-1,) + (1,) * (n.ndim - 1))
        return jnp.where(mask, n, b)

    return jax.tree.map(pick, best, new)


@dataclass
class TrainReport:
    """What happened while training: per-epoch rows and the measured throughput."""

    epochs: int
    stopped_early: bool
    history: list[dict[str, float]]
    train_size: int
    holdout_indices: np.ndarray
    seconds: float
    samples_per_second: float
    """Training transitions per second after the first (compiling) epoch; every
    transition passes through all members, on whatever device ran it."""


def split_holdout(n: int, config: EnsembleConfig, rng: np.random.Generator):
    holdout = min(int(n * config.holdout_fraction), config.max_holdout)
    if holdout < 1 or n - holdout < 1:
        raise DataError(f"dynamics: {n} transitions are too few to hold some out")
    perm = rng.permutation(n)
    return np.sort(perm[holdout:]), np.sort(perm[:holdout])


def model_io(observations, actions, rewards, next_observations) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs [s, a] and targets [s' - s, r] as float32 arrays."""
    inputs = np.concatenate([observations, actions], axis=1).astype(np.float32)
    targets = np.concatenate(
        [next_observations - observations, np.asarray(rewards)[:, None]], axis=1
    ).astype(np.float32)
    return inputs, targets


EpochCallback = Callable[[dict[str, float]], None]


def train_ensemble(
    observations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    next_observations: np.ndarray,
    config: EnsembleConfig = EnsembleConfig(),
    seed: int = 0,
    on_epoch: EpochCallback | None = None,
    resume_dir: Path | None = None,
    save_every_s: float = 60.0,
) -> tuple[DynamicsModel, TrainReport]:
    """Fit the ensemble on transitions (raw, unnormalized arrays) and choose its elites.

    With `resume_dir`, the loop state is saved there every `save_every_s` seconds and
    training continues from a state found there (`dynamics.partial`): a killed run resumes
    where it was, with the same result as an uninterrupted one."""
    from shiftrl.dynamics.partial import LoopState, load_state, save_state

    obs_dim, act_dim = observations.shape[1], actions.shape[1]
    inputs, targets = model_io(observations, actions, rewards, next_observations)
    rng = np.random.default_rng(seed)
    train_idx, holdout_idx = split_holdout(len(inputs), config, rng)
    mean = inputs[train_idx].mean(axis=0)
    std = inputs[train_idx].std(axis=0)
    std = np.where(std < 1e-12, 1.0, std).astype(np.float32)

    x_train = jnp.asarray((inputs[train_idx] - mean) / std)
    y_train = jnp.asarray(targets[train_idx])
    x_hold = jnp.asarray((inputs[holdout_idx] - mean) / std)
    y_hold = jnp.asarray(targets[holdout_idx])
    n_train = len(train_idx)
    batch_size = min(config.batch_size, n_train)
    boot = jnp.asarray(rng.integers(0, n_train, size=(config.members, n_train)), jnp.int32)

    key = jax.random.PRNGKey(seed)
    key, k_init = jax.random.split(key)
    params = jax.jit(init_params, static_argnums=(0, 1, 2))(config, obs_dim, act_dim, k_init)
    opt_state = jax.jit(_optimizer(config).init)(params)
    best_layers = jax.tree.map(jnp.copy, params["layers"])
    best_mse = np.full(config.members, np.inf)
    history: list[dict[str, float]] = []
    since_update, epoch = 0, 0
    fresh = LoopState(params, opt_state, best_layers, best_mse, since_update, epoch, key, history)
    resumed = load_state(resume_dir, fresh)
    if resumed is not None:
        params, opt_state, best_layers = resumed.params, resumed.opt_state, resumed.best_layers
        best_mse, since_update, epoch = resumed.best_mse, resumed.since_update, resumed.epoch
        key, history = resumed.key, resumed.history
    first_epoch, start, after_first, saved_at = epoch, time.perf_counter(), None, time.monotonic()
    while True:
        epoch += 1
        key, k_epoch = jax.random.split(key)
        params, opt_state, loss = train_epoch(
            params, opt_state, boot, x_train, y_train, k_epoch, config, batch_size
        )
        mse = np.asarray(member_mse(params, x_hold, y_hold), np.float64)
        with np.errstate(invalid="ignore"):  # inf / inf before a member's first snapshot
            improved = (best_mse - mse) / best_mse > config.improvement
        improved |= np.isinf(best_mse) & np.isfinite(mse)
        if improved.any():
            best_layers = _keep_improved(best_layers, params["layers"], jnp.asarray(improved))
            best_mse = np.where(improved, mse, best_mse)
            since_update = 0
        else:
            since_update += 1
        if after_first is None:
            after_first = time.perf_counter()
        row = {
            "epoch": epoch,
            "train_loss": float(loss),
            "holdout_mse_elites": float(np.sort(best_mse)[: config.elites].mean()),
            "improved": int(improved.sum()),
            "epochs_since_update": since_update,
            "seconds": time.perf_counter() - start,
        }
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if not np.isfinite(float(loss)):
            raise DataError("dynamics: training diverged (non-finite loss); check the data scale")
        stop_early = since_update >= config.max_epochs_since_update
        if stop_early or (config.max_epochs is not None and epoch >= config.max_epochs):
            break
        if resume_dir is not None and time.monotonic() - saved_at >= save_every_s:
            state = LoopState(
                params, opt_state, best_layers, best_mse, since_update, epoch, key, history
            )
            save_state(resume_dir, state)
            saved_at = time.monotonic()

    seconds = time.perf_counter() - start
    steady = seconds - (after_first - start)
    per_epoch = (n_train // batch_size) * batch_size
    timed = epoch - first_epoch - 1  # epochs after this call's first (compiling) one
    samples_per_second = per_epoch * timed / steady if timed > 0 and steady > 0 else 0.0
    elites = np.argsort(best_mse, kind="stable")[: config.elites]
    model = DynamicsModel(
        params={**params, "layers": best_layers},
        input_mean=jnp.asarray(mean),
        input_std=jnp.asarray(std),
        elites=jnp.asarray(elites, jnp.int32),
        holdout_mse=jnp.asarray(best_mse, jnp.float32),
        config=config,
        obs_dim=obs_dim,
        act_dim=act_dim,
    )
    report = TrainReport(
        epochs=epoch,
        stopped_early=bool(stop_early),
        history=history,
        train_size=n_train,
        holdout_indices=holdout_idx,
        seconds=seconds,
        samples_per_second=samples_per_second,
    )
    return model, report
