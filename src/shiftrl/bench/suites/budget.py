"""How long and how often a suite runs: budgets (`quick`, `paper`) and their scaled labels.

`Budget.scaled(n)` is a profile at n gradient steps (its evaluation interval and add-on step
counts in proportion), for machines where a profile is too long; its label is
`<profile>-<n>` (`quick-20k`, `profile_label`). `Budget.with_online_steps(m)` sets the online
phases of offline-to-online cells to m steps (label suffix `-online<m>`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shiftrl.core.errors import ConfigError

if TYPE_CHECKING:
    from shiftrl.bench.suites.spec import Online

_STEP_SETTING = re.compile(r"(^|_)(steps|period|every)$")
"""Add-on and learner settings that count steps (`pretrain_steps`, `update_period`,
`behavior_steps`): the ones `Budget.scaled` scales; other integers (`top_trajectories`, ...)
are left alone."""
MIN_EVALS = 5
"""A scaled budget evaluates at least this many times (when it has that many steps)."""


@dataclass(frozen=True)
class OnlineBudget:
    """How long and how often the online phases of offline-to-online cells run."""

    steps: int | None = None
    """Online steps of every online phase; None keeps each cell's own (the papers')."""
    eval_every: int = 10_000
    eval_episodes: int = 10
    steps_per_iter: int = 1000
    """Environment steps collected between two bursts of updates (divides the others)."""
    fraction: float = 1.0
    """Share of each cell's own online steps when `steps` is None (a quick budget of
    online-only cells of different lengths), rounded to a multiple of `steps_per_iter`."""

    def online_steps(self, online: Online) -> int:
        if self.steps is not None:
            return self.steps
        if self.fraction == 1.0:
            return online.steps
        return (
            max(1, round(online.steps * self.fraction / self.steps_per_iter)) * self.steps_per_iter
        )

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if self.fraction == 1.0:
            del d["fraction"]  # budgets recorded before it existed read the same
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> OnlineBudget:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in known})


@dataclass(frozen=True)
class Budget:
    """How long and how often: one of a suite's profiles (`quick`, `paper`)."""

    steps: int
    eval_every: int
    eval_episodes: int
    seeds: tuple[int, ...]
    hidden: tuple[int, ...] | None = None
    """Hidden sizes for every network of every learner; None keeps each learner's paper size."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Further run settings for every job (e.g. batch_size, log_every)."""
    note: str = ""
    """What the budget is and why (shown in reports), e.g. '10% of the papers' 1M steps'."""
    addon_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """{add-on: {setting: value}} for the jobs that have that add-on (others ignore it), e.g.
    {"spot": {"pretrain_steps": 10_000}} to scale an add-on's own steps with `steps`."""
    online: OnlineBudget = field(default_factory=OnlineBudget)
    """The online phases of offline-to-online cells (unused by offline cells)."""
    learner_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """{learner: {setting: value}} for the jobs of that learner (a recipe's jobs by its
    learner), e.g. {"bracp": {"behavior_steps": 30_000}}: a learner's own phase lengths,
    scaled with `steps` like `addon_settings`; a cell's overrides still win."""

    def scaled(self, steps: int, profile: str = "") -> Budget:
        """This budget at `steps` gradient steps, for a machine where it is too long (or to
        run it longer). In proportion to `steps / self.steps`: the evaluation interval (a
        divisor of `steps` where one is close, so every evaluation falls on a chunk boundary,
        and at least `MIN_EVALS` evaluations) and every add-on step count in
        `addon_settings` and `learner_settings` (`*_steps`, `*_period`, `*_every`; at
        least 1). Seeds, networks,
        run settings and the online phases of offline-to-online cells stay as they are.
        `profile` names this budget in the note ("scaled to 20,000 steps from the quick
        budget (100,000)")."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"--steps must be a positive number of steps, got {steps!r}")
        if steps == self.steps:
            return self

        def scale(table: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
            return {
                name: {k: _scale_steps(k, v, steps, self.steps) for k, v in kv.items()}
                for name, kv in table.items()
            }

        what = f"the {profile} budget" if profile else "the budget"
        scaling = f"scaled to {steps:,} steps from {what} ({self.steps:,})"
        return dataclasses.replace(
            self,
            steps=steps,
            eval_every=_scaled_eval_every(self.eval_every, self.steps, steps),
            addon_settings=scale(self.addon_settings),
            learner_settings=scale(self.learner_settings),
            note=f"{self.note}; {scaling}" if self.note else scaling,
        )

    def with_online_steps(self, steps: int, profile: str = "") -> Budget:
        """This budget with every online phase at `steps` environment steps (each cell's own
        steps otherwise: the papers'), its online evaluation interval in proportion to the
        profile's (at least `MIN_EVALS` evaluations), on multiples of `steps_per_iter`."""
        o = self.online
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < o.steps_per_iter:
            raise ConfigError(
                f"--online-steps must be a number of steps >= {o.steps_per_iter:,}, got {steps!r}"
            )
        if steps % o.steps_per_iter:
            raise ConfigError(
                f"--online-steps must be a multiple of {o.steps_per_iter:,} (the environment "
                f"steps between two bursts of updates), got {steps:,}"
            )
        if steps == o.steps:
            return self
        every = o.eval_every if o.steps is None else o.eval_every * steps // o.steps
        every = min(every, steps // MIN_EVALS) // o.steps_per_iter * o.steps_per_iter
        what = f"the {profile} budget's" if profile else "the budget's"
        was = "each cell's own" if o.steps is None else f"{o.steps:,}"
        scaling = f"online phases at {steps:,} steps instead of {what} ({was})"
        return dataclasses.replace(
            self,
            online=dataclasses.replace(o, steps=steps, eval_every=max(o.steps_per_iter, every)),
            note=f"{self.note}; {scaling}" if self.note else scaling,
        )

    def describe(self, with_online: bool = False) -> str:
        nets = "the papers' network sizes" if self.hidden is None else f"networks {self.hidden}"
        extra = "".join(f", {k}={v}" for k, v in self.settings.items())
        extra += "".join(
            f", {name}.{k}={_num(v)}"
            for table in (self.learner_settings, self.addon_settings)
            for name, kv in table.items()
            for k, v in kv.items()
        )
        text = (
            f"{self.steps:,} gradient steps, evaluation every {self.eval_every:,} steps with "
            f"{self.eval_episodes} episodes, {nets}{extra}"
        )
        if with_online:
            o = self.online
            steps = "each cell's own" if o.steps is None else f"{o.steps:,}"
            text += (
                f"; then {steps} online steps, evaluation every {o.eval_every:,} steps with "
                f"{o.eval_episodes} episodes"
            )
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "eval_every": self.eval_every,
            "eval_episodes": self.eval_episodes,
            "seeds": list(self.seeds),
            "hidden": None if self.hidden is None else list(self.hidden),
            "settings": jsonable(dict(self.settings)),
            "note": self.note,
            "addon_settings": {k: jsonable(dict(v)) for k, v in self.addon_settings.items()},
            "online": self.online.to_json(),
            **(
                {
                    "learner_settings": {
                        k: jsonable(dict(v)) for k, v in self.learner_settings.items()
                    }
                }
                if self.learner_settings
                else {}
            ),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Budget:
        return cls(
            steps=d["steps"],
            eval_every=d["eval_every"],
            eval_episodes=d["eval_episodes"],
            seeds=tuple(d["seeds"]),
            hidden=None if d.get("hidden") is None else tuple(d["hidden"]),
            settings=dict(d.get("settings", {})),
            note=d.get("note", ""),
            addon_settings={
                k: {kk: untuple(vv) for kk, vv in v.items()}
                for k, v in d.get("addon_settings", {}).items()
            },
            online=OnlineBudget.from_json(d.get("online")),
            learner_settings={
                k: {kk: untuple(vv) for kk, vv in v.items()}
                for k, v in d.get("learner_settings", {}).items()
            },
        )


def steps_label(steps: int) -> str:
    """20000 -> '20k', 1000000 -> '1m', 2500 -> '2500' (read back by `parse_steps`)."""
    if steps % 1_000_000 == 0:
        return f"{steps // 1_000_000}m"
    if steps % 1000 == 0:
        return f"{steps // 1000}k"
    return str(steps)


def parse_steps(text: str) -> int:
    """'20k' -> 20000, '1m' -> 1000000, '2500' -> 2500."""
    scale = {"k": 1000, "m": 1_000_000}.get(text[-1:], 1)
    return int(text[:-1] if scale > 1 else text) * scale


def profile_label(profile: str, steps: int | None, online_steps: int | None = None) -> str:
    """A scaled profile's label: 'quick' at 20,000 steps -> 'quick-20k'; with 5,000 online
    steps -> 'quick-20k-online5k'."""
    label = profile if steps is None else f"{profile}-{steps_label(steps)}"
    return label if online_steps is None else f"{label}-online{steps_label(online_steps)}"


def _scale_steps(key: str, value: Any, steps: int, old_steps: int) -> Any:
    """An add-on step count in proportion to the learner's steps (rounded, at least 1)."""
    if isinstance(value, bool) or not isinstance(value, int) or not _STEP_SETTING.search(key):
        return value
    return max(1, (value * steps + old_steps // 2) // old_steps)


def _scaled_eval_every(eval_every: int, old_steps: int, steps: int) -> int:
    """The evaluation interval at `steps` steps: in proportion, at most steps / MIN_EVALS;
    the largest divisor of `steps` not above that when one is within a factor 2 (so the
    training chunks stay long and every evaluation lands on one), else that value rounded
    down to 1, 2, 2.5 or 5 x 10^k (the trainer also evaluates at the final step)."""
    target = max(1, min(eval_every * steps // old_steps, steps // MIN_EVALS))
    divisor = max(
        d
        for i in range(1, math.isqrt(steps) + 1)
        if steps % i == 0
        for d in (i, steps // i)
        if d <= target
    )
    if 2 * divisor >= target:
        return divisor
    nice = [m * 10**k for k in range(len(str(target))) for m in (1, 2, 2.5, 5)]
    return int(max(n for n in nice if n <= target and n == int(n)))


def _num(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def untuple(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v
