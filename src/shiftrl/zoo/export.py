"""Pick the shipped snapshots from a behaviour-policy training run and write them into the package.

- expert: the snapshot with the best stochastic return (re-measured over `episodes` episodes
  among the top candidates by the run's logged deterministic evaluations);
- medium: the snapshot whose stochastic return is closest to one third of the way from
  random to expert (D4RL's medium policy: about a third of the expert's return, random
  returns being near 0 in locomotion), taken from those before the expert;
- replay-<steps>: every snapshot up to medium, to regenerate medium-replay data;
- random_return: uniform-random actions in the variant, over `random_episodes` episodes.

`measure_snapshots` (`shiftrl zoo measure`) then gives every other shipped snapshot its
return over N episodes too, so the manifest states each snapshot's return.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from shiftrl.core.errors import ConfigError
from shiftrl.envs import resolve
from shiftrl.envs.measure import episode_returns as _episode_returns
from shiftrl.envs.measure import uniform_policy
from shiftrl.zoo import MANIFEST, WEIGHTS, BehaviourPolicy


def _uniform(entry: dict):
    return uniform_policy(entry["action_low"], entry["action_high"])


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
    _write_manifest(man, MANIFEST)
    return entry


def _write_manifest(man: dict[str, Any], path: Path) -> None:
    """Write atomically: dataset builds read the manifest while the zoo is being measured."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(man, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def measure_snapshots(
    variants: list[str] | None = None, episodes: int = 10, progress: bool = True
) -> dict[str, list[dict[str, Any]]]:
    """Measure the return of every shipped snapshot that has none yet (the replay snapshots:
    `export` measures only the expert and medium candidates) over `episodes` stochastic
    episodes, with the seed `export` uses, and write it into the manifest. The expert and
    medium records, which are the references and dataset levels, are never re-measured.
    Returns the records it filled, per variant."""
    from rich.progress import Progress

    from shiftrl import zoo

    man = zoo.manifest()
    chosen = variants or sorted(man["policies"])
    unknown = [v for v in chosen if v not in man["policies"]]
    if unknown:
        raise ConfigError(f"the zoo has no policies for '{unknown[0]}'; see `shiftrl zoo list`")
    todo = [
        (v, s) for v in chosen for s in man["policies"][v]["snapshots"] if "return_mean" not in s
    ]
    filled: dict[str, list[dict[str, Any]]] = {}
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("measuring snapshots", total=len(todo))
        for variant, snap in todo:
            entry = man["policies"][variant]
            returns = _episode_returns(
                resolve(variant), BehaviourPolicy(variant, snap, entry), episodes, seed=123
            )
            snap.update(
                return_mean=float(returns.mean()),
                return_std=float(returns.std()),
                episodes=len(returns),
            )
            filled.setdefault(variant, []).append(snap)
            _write_manifest(man, zoo.manifest_path())
            bar.advance(task)
    return filled
