"""Dynamics-randomized environments: a hidden parameter drawn anew at every episode start.

A randomized environment is a set of registered fixed variants of one robot that differ in
one physical parameter (SRPO's online setting, a HiP-MDP: gravity, body mass or friction
scales), e.g. `hopper-randomized-mass` = {hopper-mass-0.5, hopper-base, hopper-mass-2.0}.
At every `reset` it draws one member uniformly (from its own generator, seeded by
`reset(seed=...)`, so a seeded run replays the same sequence of dynamics) and the episode
runs in exactly that member's physics. `reset(options={"dynamics": i})` forces member i
(evaluation per dynamics). The member is not in the observation (the learner has to infer it);
`info["dynamics"]` (the member's dynamics name, 'mass-2.0' / 'base'), `info["dynamics_index"]`
and `info["dynamics_scale"]` carry it, at reset and at every step, for evaluation per dynamics.

Re-applying a shift at reset is cheap and exact: at construction every member's physics is
built once with the same `apply_shifts` as its fixed variant (a `copy.deepcopy` of the
compiled `MjModel` per member, a few hundred KB each), and a reset only points the env at
the drawn model (`env.unwrapped.model = ...`; `MjData` depends on the model's sizes alone,
which shifts of mass, gravity and friction leave unchanged). Nothing is edited in place, so
no error can accumulate over episodes. The pendulum keeps its (g, m, l) per member instead.
A renderer made before a switch keeps drawing with the model it was made with.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np

from shiftrl.core.errors import ConfigError

RANDOMIZED_KWARG = "shiftrl_randomized"
ENTRY_POINT = "shiftrl.envs.randomized:make_randomized_env"


@dataclass(frozen=True)
class RandomizedVariant:
    """A robot whose `kind` of dynamics is drawn per episode from the `members` variants."""

    robot: str
    kind: str
    """The parameter drawn: 'gravity', 'mass' or 'friction'."""
    members: tuple[str, ...]
    """Fixed variant names, one per value of the hidden parameter ('hopper-mass-0.5', ...)."""

    @property
    def name(self) -> str:
        return f"{self.robot}-randomized-{self.kind}"

    @property
    def gym_id(self) -> str:
        return f"shiftrl/{self.name}-v0"

    @property
    def member_ids(self) -> tuple[str, ...]:
        """The members' Gymnasium ids: where evaluation per dynamics runs."""
        return tuple(f"shiftrl/{m}-v0" for m in self.members)


def _members(robot: str, kind: str, scales: tuple[float, ...]) -> tuple[str, ...]:
    return tuple(f"{robot}-base" if s == 1.0 else f"{robot}-{kind}-{s}" for s in scales)


# Scales that are registered fixed variants, so every drawn dynamics is one `shiftrl envs`
# lists (with its reference scores) and can be evaluated on its own.
SCALES = (0.5, 1.0, 2.0)
RANDOMIZED: dict[str, RandomizedVariant] = {
    v.name: v
    for v in [
        # SRPO's first illustration: the pendulum under varying gravity
        RandomizedVariant("pendulum", "gravity", _members("pendulum", "gravity", SCALES)),
        *(
            RandomizedVariant(robot, kind, _members(robot, kind, SCALES))
            for robot in ("hopper", "walker2d")
            for kind in ("mass", "gravity", "friction")
        ),
    ]
}


def randomized_of(env_id: str) -> RandomizedVariant | None:
    """The randomized variant behind a name or `shiftrl/...-v0` id, else None."""
    name = env_id.removeprefix("shiftrl/").removesuffix("-v0")
    return RANDOMIZED.get(name)


class RandomizedDynamicsEnv(gym.Wrapper):
    """Draws one member's dynamics at every reset (see the module docstring)."""

    def __init__(self, env: gym.Env, variant: RandomizedVariant, member_shifts: list[tuple]):
        super().__init__(env)
        self.variant = variant
        raw = env.unwrapped
        self._pendulum = variant.robot == "pendulum"
        self._physics = [self._build(raw, shifts) for shifts in member_shifts]
        self._scales = [float(s[0].scale) if s else 1.0 for s in member_shifts]
        self._names = [m[len(variant.robot) + 1 :] for m in variant.members]
        self._rng: np.random.Generator | None = None
        self.dynamics_index = 0
        self._set(0)

    def _build(self, raw: Any, shifts: tuple) -> Any:
        from shiftrl.envs.shifts import apply_shift

        if self._pendulum:
            params = SimpleNamespace(g=raw.g, m=raw.m, l=raw.l, max_torque=raw.max_torque)
            for spec in shifts:
                apply_shift(params, spec)
            return (params.g, params.m, params.l)
        model = copy.deepcopy(raw.model)  # the unshifted model, as each fixed variant starts
        for spec in shifts:
            apply_shift(model, spec)
        return model

    def _set(self, index: int) -> None:
        raw = self.env.unwrapped
        if self._pendulum:
            raw.g, raw.m, raw.l = self._physics[index]
        else:
            raw.model = self._physics[index]
        self.dynamics_index = index

    def dynamics_info(self) -> dict[str, Any]:
        i = self.dynamics_index
        return {
            "dynamics": self._names[i],
            "dynamics_index": i,
            "dynamics_scale": self._scales[i],
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        options = dict(options or {})
        forced = options.pop("dynamics", None)
        if seed is not None:
            self._rng = np.random.default_rng([seed, 0xD15])
        elif self._rng is None:
            self._rng = np.random.default_rng()
        draw = int(self._rng.integers(len(self._physics)))  # drawn even when forced: same stream
        if forced is not None:
            if not 0 <= int(forced) < len(self._physics):
                raise ConfigError(
                    f"dynamics index {forced} out of range for {self.variant.name} "
                    f"({len(self._physics)} members)"
                )
            draw = int(forced)
        self._set(draw)
        obs, info = self.env.reset(seed=seed, options=options or None)
        return obs, {**info, **self.dynamics_info()}

    def step(self, action):
        obs, reward, term, trunc, info = self.env.step(action)
        return obs, reward, term, trunc, {**info, **self.dynamics_info()}


def make_randomized_env(**kwargs: Any) -> gym.Env:
    """Gymnasium entry point: the robot's base env drawing its members' dynamics per episode."""
    from shiftrl.envs.registry import make_variant_env, variant_of

    name = kwargs.pop(RANDOMIZED_KWARG, None)
    variant = RANDOMIZED.get(name) if name is not None else None
    if variant is None:
        raise ConfigError(
            f"unknown randomized environment {name!r}; known: {', '.join(RANDOMIZED)}"
        )
    base = make_variant_env(shiftrl_variant=f"{variant.robot}-base", **kwargs)
    shifts = [variant_of(m).shifts for m in variant.members]
    return RandomizedDynamicsEnv(base, variant, shifts)


def register_randomized() -> list[str]:
    """Register every randomized environment with Gymnasium (idempotent). Returns the ids."""
    from shiftrl.envs.registry import ROBOTS

    ids = []
    for v in RANDOMIZED.values():
        ids.append(v.gym_id)
        if v.gym_id in gym.registry:
            continue
        base = gym.spec(ROBOTS[v.robot].base_env_id)
        gym.register(
            id=v.gym_id,
            entry_point=ENTRY_POINT,
            kwargs={RANDOMIZED_KWARG: v.name},
            max_episode_steps=base.max_episode_steps,
            reward_threshold=base.reward_threshold,
        )
    return ids


def list_randomized() -> list[dict[str, Any]]:
    """Rows for `shiftrl envs`, like `list_variants`'s (kind 'randomized')."""
    from shiftrl.envs.registry import ROBOTS

    return [
        {
            "name": v.name,
            "id": v.gym_id,
            "robot": v.robot,
            "base_env_id": ROBOTS[v.robot].base_env_id,
            "kind": "randomized",
            "level": v.kind,
            "changes": (
                f"{ROBOTS[v.robot].base_env_id} with {v.kind} drawn per episode from "
                + ", ".join(m[len(v.robot) + 1 :] for m in v.members)
            ),
        }
        for v in RANDOMIZED.values()
    ]
