"""Pick the shipped snapshots from a behaviour-policy training run and write them into the package.

- expert: the snapshot with the best stochastic return (re-measured over `episodes` episodes
  among the top candidates by the run's logged deterministic evaluations);
- medium: the snapshot whose stochastic return is closest to one third of the way from
  random to expert (D4RL's medium policy: about a third of the expert's return, random
  returns being near 0 in locomotion), taken from those before the expert;
- replay-<steps>: every snapshot up to medium, to regenerate medium-replay data;
- random_return: uniform-random actions in the variant, over `random_episodes` episodes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from shiftrl.envs import resolve
from shiftrl.zoo import MANIFEST, WEIGHTS, BehaviourPolicy


def _episode_returns(env_id: str, policy, episodes: int, seed: int) -> np.ndarray:
    import gymnasium as gym

    from shiftrl.training.evaluation import ensure_envs_registered

    ensure_envs_registered()
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


def _uniform(entry: dict):
    low, high = np.asarray(entry["action_low"]), np.asarray(entry["action_high"])

    def policy(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(low, high, (len(obs), entry["act_dim"])).astype(np.float32)

    return policy


def _steps_trained(run_dir: Path, meta: dict) -> int:
    """Environment steps the run actually logged (a resumed run may go past its first budget)."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return meta["online_config"]["total_steps"]
    steps = [json.loads(line)["step"] for line in path.read_text().splitlines() if line.strip()]
    return max(steps, default=meta["online_config"]["total_steps"])


def export(
    run_dir: str | Path, episodes: int = 10, candidates: int = 4, random_episodes: int = 50
) -> dict[str, Any]:
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "config.json").read_text())
    variant, env_id = meta["variant"], resolve(meta["variant"])
    pre = meta["preprocessor"]
    entry = {
        "env_id": env_id,
        "obs_dim": meta["obs_dim"],
        "act_dim": meta["act_dim"],
        "hidden": meta["sac"]["hidden"],
        "action_low": pre["action_low"],
        "action_high": pre["action_high"],
        "train_steps_total": _steps_trained(run_dir, meta),
        "algorithm": "SAC (shiftrl.learners.sac, zoo preset), online",
        "snapshots": [],
    }
    snaps = {
        int(p.stem.split("_")[1]): p
        for p in sorted((run_dir / "snapshots").glob("actor_*.msgpack"))
    }
    logged = {
        r["step"]: r["return"]
        for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
    }
    steps_sorted = sorted(s for s in snaps if s in logged)

    def measure(step: int) -> np.ndarray:
        snap = {"name": "tmp", "file": str(snaps[step].resolve())}
        return _episode_returns(env_id, BehaviourPolicy(variant, snap, entry), episodes, seed=123)

    # expert: best stochastic return among the top logged candidates
    top = sorted(steps_sorted, key=lambda s: logged[s], reverse=True)[:candidates]
    measured = {s: measure(s) for s in top}
    expert_step = max(measured, key=lambda s: measured[s].mean())
    expert_ret = float(measured[expert_step].mean())
    random = _episode_returns(env_id, _uniform(entry), random_episodes, seed=7)
    entry["random_return"], entry["random_episodes"] = float(random.mean()), random_episodes
    # medium: a third of the way from random to expert, among earlier snapshots
    target = entry["random_return"] + (expert_ret - entry["random_return"]) / 3.0
    early = [s for s in steps_sorted if s < expert_step]
    near = sorted(early, key=lambda s: abs(logged[s] - target))[:candidates]
    measured.update({s: measure(s) for s in near if s not in measured})
    medium_step = min(near, key=lambda s: abs(measured[s].mean() - target))

    out = WEIGHTS / variant
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)

    def ship(name: str, step: int, returns: np.ndarray | None) -> None:
        shutil.copy(snaps[step], out / f"{name}.msgpack")
        rec = {"name": name, "file": f"{variant}/{name}.msgpack", "train_steps": step}
        if returns is not None:
            rec.update(
                return_mean=float(returns.mean()),
                return_std=float(returns.std()),
                episodes=len(returns),
            )
        entry["snapshots"].append(rec)

    ship("expert", expert_step, measured[expert_step])
    ship("medium", medium_step, measured[medium_step])
    for s in steps_sorted:
        if s <= medium_step:
            ship(f"replay-{s:010d}", s, None)
    entry["start_steps"] = meta["online_config"]["start_steps"]
    entry["snapshot_every"] = meta["online_config"]["snapshot_every"]

    man = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {"format": 1, "policies": {}}
    man["policies"][variant] = entry
    MANIFEST.write_text(json.dumps(man, indent=1, sort_keys=True) + "\n")
    return entry
