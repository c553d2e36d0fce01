"""Measure every variant's random-policy return (maintainers: `python -m shiftrl.envs.measure`).

Writes `random_returns.json` beside this module: per variant, the mean return of
uniform-random actions over `episodes` episodes (seeded), which `reference.py` uses as
the random reference of variants the behaviour-policy zoo has no policies for (the zoo
measures its own variants when their policies are exported). Deterministic for a given
MuJoCo / Gymnasium version: the same seeds give the same returns. The environments are
registered when the `shiftrl.envs` package (this module's parent) is imported.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RANDOM_RETURNS = Path(__file__).with_name("random_returns.json")
EPISODES = 50
SEED = 7


def episode_returns(env_id: str, policy, episodes: int, seed: int) -> np.ndarray:
    """Returns of `episodes` episodes of `policy(obs_batch, rng) -> actions`, one env each,
    reset with seeds seed, seed + 1, ... (the zoo's measurements use this too)."""
    import gymnasium as gym

    envs = gym.make_vec(env_id, num_envs=episodes, vectorization_mode="sync")
    rng = np.random.default_rng(seed)
    try:
        obs, _ = envs.reset(seed=[seed + i for i in range(episodes)])
        returns, done = np.zeros(episodes), np.zeros(episodes, bool)
        while not done.all():
            obs, r, term, trunc, _ = envs.step(policy(obs, rng))
            returns += np.where(done, 0.0, r)
            done |= term | trunc
        return returns
    finally:
        envs.close()


def uniform_policy(low, high):
    """Uniform-random actions in [low, high] for a batch of observations."""
    low, high = np.asarray(low, np.float32), np.asarray(high, np.float32)

    def policy(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(low, high, (len(obs), *low.shape)).astype(np.float32)

    return policy


def random_return(env_id: str, episodes: int = EPISODES, seed: int = SEED) -> np.ndarray:
    """Per-episode returns of uniform-random actions in `env_id`."""
    import gymnasium as gym

    env = gym.make(env_id)
    space = env.action_space
    env.close()
    return episode_returns(env_id, uniform_policy(space.low, space.high), episodes, seed)


def measure_all(names: list[str] | None = None, episodes: int = EPISODES) -> dict[str, dict]:
    from rich.progress import track

    from shiftrl.envs import VARIANTS

    table = json.loads(RANDOM_RETURNS.read_text()) if RANDOM_RETURNS.exists() else {}
    for name in track(names or list(VARIANTS), description="random returns"):
        returns = random_return(VARIANTS[name].gym_id, episodes)
        table[name] = {
            "random_return": round(float(returns.mean()), 3),
            "random_std": round(float(returns.std()), 3),
            "episodes": episodes,
        }
        tmp = RANDOM_RETURNS.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(dict(sorted(table.items())), indent=1) + "\n")
        tmp.replace(RANDOM_RETURNS)
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", help="variant names (default: all)")
    parser.add_argument("--episodes", type=int, default=EPISODES)
    args = parser.parse_args()
    measure_all(args.variants or None, args.episodes)
