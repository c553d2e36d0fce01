"""The add-on protocol: how shift methods and regularizers plug into any learner.

Every method has an identity default, so an add-on overrides only what it needs:

- `update`         trains the add-on's own networks on the batch (DARA's domain
                   classifiers, SRPO's state discriminator, SSAR's beta(s)).
- `transform_batch` edits the batch before the learner sees it: rewards (DARA,
                   SRPO), or appended transitions from its own device-side buffer
                   (model rollouts for MOPO / MOREC), labelled with `domain`.
- `actor_hook` /   edit a learner's named per-sample loss terms and weights
  `critic_hook`    (SPOT adds a density term, SSAR turns a scalar weight into beta(s)).

The trainer runs: sample -> add-on updates -> batch transforms -> learner update
(which calls the hooks). An add-on's state is a pytree stored in the train carry,
so it is checkpointed, resumed and vmapped with the learner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import jax

from shiftrl.core.types import Batch
from shiftrl.learners.base import Learner, LearnerSpec, Metrics, Terms, Weights


@dataclass(frozen=True)
class AddOnContext:
    """What an add-on may read from the learner: the static learner and its current state
    (for example `learner.value(learner_state, obs)` for SRPO's value ranking)."""

    learner: Learner
    learner_state: Any


class AddOn:
    name: ClassVar[str] = "addon"
    description: ClassVar[str] = ""
    pretrain_steps: int = 0
    """Add-on-only update steps run before the learner starts (e.g. DARA's classifiers)."""
    train_alongside: bool = True
    """Whether `update` keeps running during learning (False: frozen after pretraining)."""

    def check(self, learner: Learner) -> None:
        """Raise ConfigError when this add-on cannot work with `learner` (checked before a run)."""

    def init(self, rng: jax.Array, spec: LearnerSpec) -> Any:
        return {}

    def update(
        self, state: Any, batch: Batch, ctx: AddOnContext, rng: jax.Array
    ) -> tuple[Any, Metrics]:
        return state, {}

    def transform_batch(self, state: Any, batch: Batch, ctx: AddOnContext, rng: jax.Array) -> Batch:
        return batch

    def actor_hook(
        self, state: Any, batch: Batch, terms: Terms, weights: Weights
    ) -> tuple[Terms, Weights]:
        return terms, weights

    def critic_hook(
        self, state: Any, batch: Batch, terms: Terms, weights: Weights
    ) -> tuple[Terms, Weights]:
        return terms, weights

    def to_json(self) -> dict[str, Any]:
        """The add-on's settings for config.json (frozen dataclass add-ons get this for free)."""
        import dataclasses

        if dataclasses.is_dataclass(self):
            return {"name": self.name, **dataclasses.asdict(self)}
        return {"name": self.name}
