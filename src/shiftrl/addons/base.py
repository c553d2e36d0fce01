"""The add-on protocol: how shift methods and regularizers plug into any learner.

Every method has an identity default, so an add-on overrides only what it needs:

- `update`         trains the add-on's own networks on the batch (DARA's domain
                   classifiers, SRPO's state discriminator, SSAR's beta(s)).
- `sample_batch`   replaces the loop's uniformly drawn transitions by the add-on's own
                   draw before any update sees them (MAPLE's length-H segments of the
                   real data with their stored recurrent states; see `core.types`).
- `transform_batch` edits the batch before the learner sees it: rewards (DARA,
                   SRPO), or appended transitions from its own device-side buffer
                   (model rollouts for MOPO / MOREC), labelled with `domain`.
- `actor_hook` /   edit a learner's named per-sample loss terms and weights
  `critic_hook`    (SPOT adds a density term, SSAR turns a scalar weight into beta(s)).

- `calibrate`      sets data-dependent constants in the add-on's state once, from the
                   run's preprocessing (settings stated in the data's raw units:
                   DARA's input noise and eta, SRPO's bonus; see `raw_units`).
- `annotate`       attaches per-transition arrays to the data once, before training
                   (SSAR's trusted-trajectory flags), read back as `batch.extras`.
- `bind`           validates the learner and fills learner-dependent settings
                   (SSAR's base coefficient is 1/alpha on TD3+BC, cql_alpha on CQL).
- `prepare`        readies the add-on for the run's data and preprocessing before
                   `init` (MOPO trains or reuses its dynamics ensemble here).
- `online_step`    sets the add-on's state for online fine-tuning step t of T
                   (SPOT anneals lambda, SSAR decays beta); only add-ons with
                   `finetune_supported` may be fine-tuned.

The trainer runs: sample (-> add-on draws) -> add-on updates -> batch transforms -> learner update
(which calls the hooks). An add-on's state is a pytree stored in the train carry,
so it is checkpointed, resumed and vmapped with the learner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import jax
import jax.numpy as jnp

from shiftrl.core.types import Batch
from shiftrl.learners.base import Learner, LearnerSpec, Metrics, Terms, Weights

if TYPE_CHECKING:
    from shiftrl.data.preprocess import Preprocessor

UNITS = "units"
"""Key of the raw-unit scales in an add-on's state dict (see `raw_units`)."""


def raw_units(spec: LearnerSpec) -> dict[str, jax.Array]:
    """How much one learner unit is in the data's raw units, as an add-on state entry:
    `obs` the observation std per dimension, `action` the action half-range per dimension,
    `reward` the learner's reward scale (learner reward = raw reward x scale + bias).
    Ones until `AddOn.calibrate` sets them from the run's preprocessing, so an add-on used
    on its own (tests, other loops) works in the learner's units."""
    return {
        "obs": jnp.ones(spec.obs_dim, jnp.float32),
        "action": jnp.ones(spec.act_dim, jnp.float32),
        "reward": jnp.ones((), jnp.float32),
    }


def masked_mean_std(x: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and std of x over the rows where mask is 1 (0, 0 when there are none): the
    per-domain / trusted-sample statistics add-ons log."""
    n = jnp.maximum(jnp.sum(mask), 1.0)
    mean = jnp.sum(x * mask) / n
    return mean, jnp.sqrt(jnp.sum(mask * (x - mean) ** 2) / n)


def units_of(pre: Preprocessor) -> dict[str, jax.Array]:
    """`raw_units` of a run's preprocessing."""
    half = (pre.action_high - pre.action_low) / 2
    return {
        "obs": jnp.asarray(pre.obs_std, jnp.float32),
        "action": jnp.asarray(half, jnp.float32),
        "reward": jnp.asarray(pre.reward_scale, jnp.float32),
    }


@dataclass(frozen=True)
class AddOnContext:
    """What an add-on may read from the learner: the static learner and its current state
    (for example `learner.value(learner_state, obs)` for SRPO's value ranking), and the
    run's device data (one dict of preprocessed arrays per source, target first; model
    rollouts draw their start states from it). `data` is None outside the offline loop."""

    learner: Learner
    learner_state: Any
    data: Any = None
    sampler: Any = None
    """The loop's batch layout (`training.loop.SamplerSpec`: rows per source and their
    domain labels), for add-ons that draw the batch themselves (`sample_batch`)."""


class AddOn:
    name: ClassVar[str] = "addon"
    description: ClassVar[str] = ""
    pretrain_steps: int = 0
    """Add-on-only update steps run before the learner starts (e.g. DARA's classifiers)."""
    train_alongside: bool = True
    """Whether `update` keeps running during learning (False: frozen after pretraining)."""

    needs_sources: ClassVar[bool] = False
    """Whether the add-on acts on source-domain data only (DARA), so a run without sources
    is a mistake."""
    finetune_supported: ClassVar[bool] = False
    """Whether the add-on has an online phase (offline-to-online fine-tuning)."""
    finetune_warmup: ClassVar[int] = 0
    """Policy steps the method collects online before its first update (SSAR: 5,000)."""
    finetune_replay: ClassVar[str | None] = None
    """The replay buffer the method starts fine-tuning with (None: the learner's default)."""

    def check(self, learner: Learner) -> None:
        """Raise ConfigError when this add-on cannot work with `learner` (checked before a run)."""

    def bind(self, learner: Learner) -> AddOn:
        """This add-on with learner-dependent settings resolved (after `check`)."""
        self.check(learner)
        return self

    def calibrate(self, state: Any, pre: Preprocessor) -> Any:
        """The state with the run's raw-unit scales (called once after `init`, before any
        update). Add-ons whose state dict holds `UNITS` (from `raw_units`) get them filled."""
        if isinstance(state, dict) and UNITS in state:
            return {**state, UNITS: units_of(pre)}
        return state

    def annotate(self, dataset: Any, domain: int) -> dict[str, Any]:
        """Per-transition numpy arrays for `dataset`, keyed "<addon>/<field>" (default none)."""
        return {}

    def prepare(self, datasets: list[Any], preprocessor: Any, progress: bool = True) -> AddOn:
        """This add-on ready for a run on `datasets` (raw, target first) with the run's
        `preprocessor`, before `init` (default: itself). Work that needs the data and is
        not a train step goes here: MOPO trains or loads its dynamics ensemble."""
        return self

    def prepared_records(self) -> dict[str, dict]:
        """What `prepare` trained or loaded, by component ("dynamics", "dynamics_reward"):
        each a JSON record (settings, cost, cache key, whether it was reused). A run folder
        keeps them in models.json (default: nothing)."""
        return {}

    def init(self, rng: jax.Array, spec: LearnerSpec) -> Any:
        return {}

    def update(
        self, state: Any, batch: Batch, ctx: AddOnContext, rng: jax.Array
    ) -> tuple[Any, Metrics]:
        return state, {}

    def pretrain_update(
        self, state: Any, batch: Batch, ctx: AddOnContext, rng: jax.Array
    ) -> tuple[Any, Metrics]:
        """One step of the pretraining phase (default: the same as `update`)."""
        return self.update(state, batch, ctx, rng)

    def online_step(self, state: Any, t: jax.Array, total: int) -> Any:
        """The state for online update t of `total` (schedules such as SPOT's lambda)."""
        return state

    def sample_batch(self, state: Any, batch: Batch, ctx: AddOnContext, rng: jax.Array) -> Batch:
        """The batch this step trains on, drawn from `ctx.data` with `ctx.sampler`'s layout
        (default: the loop's uniform transitions `batch`, unchanged)."""
        return batch

    def transform_batch(self, state: Any, batch: Batch, ctx: AddOnContext, rng: jax.Array) -> Batch:
        return batch

    def actor_hook(
        self, state: Any, batch: Batch, terms: Terms, weights: Weights, rng: jax.Array
    ) -> tuple[Terms, Weights]:
        return terms, weights

    def critic_hook(
        self, state: Any, batch: Batch, terms: Terms, weights: Weights, rng: jax.Array
    ) -> tuple[Terms, Weights]:
        return terms, weights

    def to_json(self) -> dict[str, Any]:
        """The add-on's settings for config.json (frozen dataclass add-ons get this for free)."""
        import dataclasses

        if dataclasses.is_dataclass(self):
            return {"name": self.name, **dataclasses.asdict(self)}
        return {"name": self.name}
