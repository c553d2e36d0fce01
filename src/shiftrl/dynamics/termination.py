"""Termination functions: when a (model-generated) transition ends its episode.

A learned dynamics model predicts next states but not `terminated`; model rollouts ask
these functions instead. Each one reproduces the `terminated` flag of the real Gymnasium
v5 environment from the observation alone, for the default observation layout
(`exclude_current_positions_from_observation=True`, so obs[0] is the torso height):

| robot       | terminated when (Gymnasium v5 `is_healthy` is False)                          |
|-------------|--------------------------------------------------------------------------------|
| hopper      | not (z > 0.7 and -0.2 < angle < 0.2 and all(-100 < obs[1:] < 100))            |
| walker2d    | not (0.8 < z < 2.0 and -1 < angle < 1)   (v5 has no state-range check)        |
| halfcheetah | never                                                                          |
| ant         | not (all(isfinite(obs)) and 0.2 <= z <= 1.0)                                   |
| pendulum    | never (episodes end by the 200-step time limit, a timeout)                     |
| pointreach  | never (10-step time limit)                                                     |

with z = obs[0], angle = obs[1]. Shifted variants (`hopper-gravity-0.5`, ...) build the
stock env class with its default health ranges, so they share their robot's function.
The NeoRL-observation variants (`hopper-base-neorl`, x-position first) have their own
entries (`hopper-neorl`, ...): the same functions of the observation without its first column.

One place where the observation cannot reproduce the environment exactly: Hopper-v5 checks
|qvel| < 100, but its observation clips qvel to [-10, 10]; a real velocity above 100 (a
simulation blow-up) terminates the env while its observation passes. A NaN anywhere fails
every strict comparison, so a model that diverges terminates on hopper and walker2d.

The functions are pure `jax.numpy` (jit- and vmap-able) and take batched arrays:
`fn(obs [B, d], action [B, a], next_obs [B, d]) -> terminated [B] bool`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from shiftrl.core.errors import ConfigError

TerminationFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def never(obs: jax.Array, action: jax.Array, next_obs: jax.Array) -> jax.Array:
    """No termination (halfcheetah, pendulum, pointreach): episodes end by time limit only."""
    return jnp.zeros(next_obs.shape[:-1], bool)


def hopper(obs: jax.Array, action: jax.Array, next_obs: jax.Array) -> jax.Array:
    z, angle = next_obs[..., 0], next_obs[..., 1]
    state_ok = jnp.all((next_obs[..., 1:] > -100.0) & (next_obs[..., 1:] < 100.0), axis=-1)
    healthy = state_ok & (z > 0.7) & (angle > -0.2) & (angle < 0.2)
    return ~healthy


def walker2d(obs: jax.Array, action: jax.Array, next_obs: jax.Array) -> jax.Array:
    z, angle = next_obs[..., 0], next_obs[..., 1]
    healthy = (z > 0.8) & (z < 2.0) & (angle > -1.0) & (angle < 1.0)
    return ~healthy


def ant(obs: jax.Array, action: jax.Array, next_obs: jax.Array) -> jax.Array:
    z = next_obs[..., 0]
    healthy = jnp.all(jnp.isfinite(next_obs), axis=-1) & (z >= 0.2) & (z <= 1.0)
    return ~healthy


def without_x(fn: TerminationFn) -> TerminationFn:
    """`fn` for NeoRL's observation layout: drop the x-position (column 0) first."""

    def neorl(obs: jax.Array, action: jax.Array, next_obs: jax.Array) -> jax.Array:
        return fn(obs[..., 1:], action, next_obs[..., 1:])

    return neorl


TERMINATION_FNS: dict[str, TerminationFn] = {
    "hopper": hopper,
    "walker2d": walker2d,
    "halfcheetah": never,
    "hopper-neorl": without_x(hopper),
    "walker2d-neorl": without_x(walker2d),
    "halfcheetah-neorl": never,
    "ant": ant,
    "pendulum": never,
    "pointreach": never,
    "never": never,
}
"""By robot name (the `Robot.name` of `shiftrl.envs.ROBOTS`, `<robot>-neorl` for NeoRL's
observation layout, plus the toy tasks and "never"
for a user's own data from an environment that does not terminate)."""


def robot_of_env(env_id: str) -> str | None:
    """The robot behind a Gymnasium id, a shiftrl variant name or id; None if unknown.
    NeoRL-observation variants answer `<robot>-neorl` (their termination functions differ)."""
    from shiftrl.envs import ROBOTS, variant_of
    from shiftrl.envs.toy import POINT_REACH_FLIPPED_ID, POINT_REACH_ID, POINT_REACH_THRUSTERS_ID

    variant = variant_of(env_id)
    if variant is not None:
        return variant.robot + ("-neorl" if variant.observation == "neorl" else "")
    by_base = {r.base_env_id: name for name, r in ROBOTS.items()}
    for toy in (POINT_REACH_ID, POINT_REACH_FLIPPED_ID, POINT_REACH_THRUSTERS_ID):
        by_base[toy] = "pointreach"
    return by_base.get(env_id)


def termination_fn(robot_or_env: str) -> TerminationFn:
    """The termination function for a robot name ('hopper'), an environment id
    ('Hopper-v5', 'shiftrl/hopper-gravity-0.5-v0') or a variant name ('hopper-mass-2.0')."""
    if robot_or_env in TERMINATION_FNS:
        return TERMINATION_FNS[robot_or_env]
    robot = robot_of_env(robot_or_env)
    if robot is None or robot not in TERMINATION_FNS:
        raise ConfigError(
            f"no termination function for {robot_or_env!r}; known robots: "
            f"{', '.join(sorted(TERMINATION_FNS))} (use 'never' for data from an environment "
            "that only ends by time limit)"
        )
    return TERMINATION_FNS[robot]
