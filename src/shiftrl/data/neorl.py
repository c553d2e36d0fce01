"""NeoRL-like datasets made from the behaviour-policy zoo: `<variant>/neorl-{low,medium,high}-v0`.

NeoRL's protocol (Qin et al., 2022; `polixir/NeoRL` README), followed here:

- behaviour policies: SAC checkpoints whose return is about 25% (low), 50% (medium) and
  75% (high) of the best checkpoint's. Here: among every snapshot the zoo ships for the
  variant (`expert`, `medium` and the `replay-<steps>` actors along the run), the one whose
  *deterministic* return (Gaussian mean, `measure_snapshots`) is closest to that fraction
  of the best deterministic return. The returns and the choice are measured once by
  `scripts/measure_neorl_levels.py` and shipped in `neorl_behaviour.json` (with each
  snapshot file's sha256, so a re-exported zoo is caught: `check_choices`).
- acting: at every step the Gaussian mean with probability 0.8, else a sample of the
  tanh-Gaussian policy ("the mistakes of human operators").
- observation: NeoRL's, with the x-position at index 0 (`shiftrl/<variant>-neorl-v0`);
  the policy acts on the standard observation (without x), as it was trained.
- reward: NeoRL's (`shiftrl.envs.neorl`; the healthy bonus also on the terminating step).
- size: in *trajectories* (NeoRL's `train_num`), 1,000 by default; episodes of at most
  1,000 steps, never cut. Trajectory k is collected alone, from seeds that depend only on
  (ID, seed, k), so a build of N trajectories is exactly the first N of any larger build
  with the same seed, NeoRL's "first train_num trajectories" semantics.

Different from NeoRL: Gymnasium v5 MuJoCo (v3 in NeoRL), the zoo's SAC runs (2x128 actors,
snapshots every 10k-ish steps, so the closest snapshot may be off the target fraction: the
JSON and `shiftrl data info` give the fraction reached), no validation file (make one with
another `--seed`), and the shifted-dynamics variants, which NeoRL does not have.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from shiftrl.core.errors import DataError
from shiftrl.data.dataset import DatasetMetadata, TransitionDataset, concatenate
from shiftrl.data.registry import DatasetSpec, Progress

LEVEL_FRACTIONS = {"neorl-low": 0.25, "neorl-medium": 0.5, "neorl-high": 0.75}
"""Dataset level -> target fraction of the best snapshot's deterministic return."""
OFF_TARGET = 0.1
"""A chosen snapshot further than this from its fraction is flagged in the description."""
MEAN_PROBABILITY = 0.8
DEFAULT_TRAJECTORIES = 1000
CHOICES_FILE = Path(__file__).with_name("neorl_behaviour.json")
MEASURE_EPISODES = 10
MEASURE_SEED = 2022
SCHEME = 1
"""Version of the collection scheme; bump when a change here changes the data."""


# ---- measuring the snapshots and choosing the behaviour policies ----------------------------
def deterministic_returns(
    variant: str, snapshot: str, episodes: int = MEASURE_EPISODES, seed: int = MEASURE_SEED
) -> np.ndarray:
    """Returns of `episodes` episodes of the snapshot's Gaussian mean in the variant's NeoRL
    env (NeoRL's reward), env k reset with seed `seed + k`."""
    import gymnasium as gym

    from shiftrl.data.zoo_datasets import NumpyBehaviour

    actor = NumpyBehaviour.from_zoo(variant, snapshot, deterministic=True)
    envs = [gym.make(neorl_env_id(variant), disable_env_checker=True) for _ in range(episodes)]
    try:
        obs = np.stack([env.reset(seed=seed + k)[0] for k, env in enumerate(envs)])
        returns = np.zeros(episodes)
        active = np.ones(episodes, bool)
        while active.any():
            action = actor(obs[:, 1:], None)
            for k in np.flatnonzero(active):
                obs[k], r, term, trunc, _ = envs[k].step(action[k])
                returns[k] += r
                active[k] = not (term or trunc)
    finally:
        for env in envs:
            env.close()
    return returns


def choose_levels(returns: dict[str, float], train_steps: dict[str, int]) -> dict[str, Any]:
    """The snapshot closest to each level's fraction of the best return (ties: earliest
    snapshot, then name), with its return and the fraction it reaches."""
    best = max(returns, key=lambda n: (returns[n], -train_steps[n], n))
    top = returns[best]
    levels = {}
    for level, frac in LEVEL_FRACTIONS.items():
        name = min(returns, key=lambda n: (abs(returns[n] - frac * top), train_steps[n], n))
        levels[level] = {
            "snapshot": name,
            "return_mean": returns[name],
            "target_return": frac * top,
            "fraction_of_best": returns[name] / top,
        }
    return {"best": {"snapshot": best, "return_mean": top}, "levels": levels}


def measure_variant(variant: str, episodes: int = MEASURE_EPISODES) -> dict[str, Any]:
    """Every snapshot's deterministic return in the variant, and the chosen snapshots."""
    from shiftrl import zoo

    snaps = zoo.manifest()["policies"][variant]["snapshots"]
    measured = {}
    for s in sorted(snaps, key=lambda s: (s["train_steps"], s["name"])):
        r = deterministic_returns(variant, s["name"], episodes)
        measured[s["name"]] = {
            "train_steps": int(s["train_steps"]),
            "return_mean": float(r.mean()),
            "return_std": float(r.std()),
            "sha256": _weights_sha256(s["file"]),
        }
    returns = {n: m["return_mean"] for n, m in measured.items()}
    steps = {n: m["train_steps"] for n, m in measured.items()}
    return {"snapshots": measured, **choose_levels(returns, steps)}


def _weights_sha256(file: str) -> str:
    from shiftrl import zoo

    return hashlib.sha256((zoo.weights_dir() / file).read_bytes()).hexdigest()


@cache
def _choices_cached(path: str, mtime_ns: int) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def choices() -> dict[str, Any]:
    """The shipped `neorl_behaviour.json` ({} when absent): per variant the measured returns
    and the chosen snapshot of each level."""
    if not CHOICES_FILE.is_file():
        return {}
    return _choices_cached(str(CHOICES_FILE), CHOICES_FILE.stat().st_mtime_ns)


def variant_choice(variant: str) -> dict[str, Any] | None:
    return choices().get("variants", {}).get(variant)


def check_choices(variant: str) -> list[str]:
    """Chosen snapshots whose weights differ from those measured (a re-exported zoo)."""
    from shiftrl import zoo

    entry = zoo.manifest()["policies"].get(variant)
    chosen = variant_choice(variant)
    if entry is None or chosen is None:
        return []
    files = {s["name"]: s["file"] for s in entry["snapshots"]}
    stale = []
    for lvl in chosen["levels"].values():
        name = lvl["snapshot"]
        if name not in files or _weights_sha256(files[name]) != chosen["snapshots"][name]["sha256"]:
            stale.append(name)
    return stale


# ---- the datasets ---------------------------------------------------------------------------
def neorl_env_id(variant: str) -> str:
    from shiftrl.envs.registry import NEORL_SUFFIX, resolve

    return resolve(variant + NEORL_SUFFIX)


def neorl_variants() -> list[str]:
    """Zoo variants with NeoRL levels: a NeoRL env exists and the choice was measured for
    the snapshots this zoo has (weights re-exported since: `check_choices`, at build time)."""
    from shiftrl import zoo
    from shiftrl.envs.registry import NEORL_SUFFIX, variant_of

    out = []
    for variant, entry in sorted(zoo.manifest()["policies"].items()):
        chosen = variant_choice(variant)
        if variant_of(variant + NEORL_SUFFIX) is None or chosen is None:
            continue
        names = {s["name"] for s in entry["snapshots"]}
        if all(lv["snapshot"] in names for lv in chosen["levels"].values()):
            out.append(variant)
    return out


def neorl_spec(variant: str, level: str) -> DatasetSpec:
    from shiftrl.data.zoo_datasets import dataset_id

    did = dataset_id(variant, level)
    lvl = variant_choice(variant)["levels"][level]
    frac = LEVEL_FRACTIONS[level]
    behaviour = (
        f"NeoRL-style: snapshot '{lvl['snapshot']}' (deterministic return "
        f"{lvl['return_mean']:.0f} = {100 * lvl['fraction_of_best']:.0f}% of the best, target "
        f"{100 * frac:.0f}%), mean {100 * MEAN_PROBABILITY:.0f}% of steps, else sampled"
    )
    if abs(lvl["fraction_of_best"] - frac) > OFF_TARGET:
        behaviour += "; off target: the zoo ships no snapshot nearer"
    info = {
        "variant": variant,
        "level": level,
        "env_id": neorl_env_id(variant),
        "behaviour": behaviour,
        "behaviour_snapshot": lvl["snapshot"],
        "behaviour_return": lvl["return_mean"],
        "fraction_of_best": round(lvl["fraction_of_best"], 4),
        "size_unit": "trajectories",
    }
    return DatasetSpec(
        did,
        _maker(did, variant, level),
        DEFAULT_TRAJECTORIES,
        f"{variant}, {level}: {behaviour}; size in trajectories",
        env_id=info["env_id"],
        origin="zoo",
        info=info,
        inputs=lambda: inputs_fingerprint(variant, level),
        size_unit="trajectories",
    )


def inputs_fingerprint(variant: str, level: str) -> str:
    from shiftrl import zoo

    entry = zoo.manifest()["policies"][variant]
    lvl = variant_choice(variant)["levels"][level]
    snap = next(s for s in entry["snapshots"] if s["name"] == lvl["snapshot"])
    h = hashlib.sha256()
    used = {k: entry.get(k) for k in ("action_low", "action_high", "hidden")}
    h.update(json.dumps([SCHEME, level, MEAN_PROBABILITY, lvl["snapshot"], used]).encode())
    h.update((zoo.weights_dir() / snap["file"]).read_bytes())
    return h.hexdigest()


class MeanOrSample:
    """NeoRL's behaviour: the actor's Gaussian mean with probability `mean_probability`,
    else a tanh-Gaussian sample, acting on the observation without its x-position."""

    def __init__(self, actor: Any, mean_probability: float = MEAN_PROBABILITY):
        self.actor, self.mean_probability = actor, mean_probability

    def __call__(self, neorl_obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        obs = np.asarray(neorl_obs, np.float32)[None, 1:]
        use_mean = rng.random() < self.mean_probability
        # the sample is drawn either way, so the stream's use does not depend on the coin
        mean, sample = self.actor.unit_mean_and_sample(obs, rng)
        unit = mean if use_mean else sample
        a = self.actor
        return (a.low + (unit + np.float32(1.0)) * np.float32(0.5) * (a.high - a.low))[0]


def collect_trajectory(env: Any, policy: MeanOrSample, seed: int) -> dict[str, np.ndarray]:
    """One whole episode (up to the time limit) from `env.reset(seed=seed)`, the policy's
    randomness from `default_rng([seed, 1])`: a function of `seed` alone. (Not
    `default_rng(seed)`: Gymnasium seeds the env's generator from `SeedSequence(seed)`, the
    same stream, so the policy's coin flips would repeat the reset noise.)"""
    rng = np.random.default_rng([seed, 1])
    obs = np.asarray(env.reset(seed=seed)[0], np.float32)
    rows: dict[str, list] = {k: [] for k in ("obs", "act", "rew", "next", "term", "trunc")}
    low, high = env.action_space.low, env.action_space.high
    while True:
        action = np.clip(policy(obs, rng), low, high).astype(np.float32)
        nxt, r, term, trunc, _ = env.step(action)
        nxt = np.asarray(nxt, np.float32)
        for k, v in zip(rows, (obs, action, r, nxt, term, trunc), strict=True):
            rows[k].append(v)
        if term or trunc:
            break
        obs = nxt
    return {k: np.asarray(v) for k, v in rows.items()}


def _maker(did: str, variant: str, level: str):
    def make(size: int, seed: int, progress: Progress | None) -> TransitionDataset:
        import gymnasium as gym

        from shiftrl.data.validate import validate
        from shiftrl.data.zoo_datasets import NumpyBehaviour, _metadata, part_seed

        stale = check_choices(variant)
        if stale:
            raise DataError(
                f"{did}: the zoo's weights of {', '.join(stale)} differ from those measured "
                "in neorl_behaviour.json; run scripts/measure_neorl_levels.py again"
            )
        lvl = variant_choice(variant)["levels"][level]
        policy = MeanOrSample(NumpyBehaviour.from_zoo(variant, lvl["snapshot"]))
        env = gym.make(neorl_env_id(variant), disable_env_checker=True)
        parts = []
        try:
            for k in range(size):
                t = collect_trajectory(env, policy, part_seed(did, seed, k))
                parts.append(
                    TransitionDataset(
                        observations=t["obs"],
                        actions=t["act"],
                        rewards=t["rew"].astype(np.float32),
                        next_observations=t["next"],
                        terminals=t["term"].astype(bool),
                        timeouts=(t["trunc"] & ~t["term"]).astype(bool),
                        metadata=DatasetMetadata(name=did),
                    )
                )
                if progress is not None:
                    progress(k + 1)
            low, high = env.action_space.low.tolist(), env.action_space.high.tolist()
        finally:
            env.close()
        ds = concatenate(parts, name=did)
        extra = {
            "behaviour": lvl["snapshot"],
            "behaviour_return": lvl["return_mean"],
            "fraction_of_best": lvl["fraction_of_best"],
            "sampling": f"Gaussian mean with probability {MEAN_PROBABILITY}, else a sample",
            "size_unit": "trajectories",  # what verify.compare holds fixed
            "observation": "NeoRL: x-position at index 0",
        }
        meta = _metadata(did, variant, level, extra)
        meta.env_id = neorl_env_id(variant)
        meta.action_low, meta.action_high = low, high
        ds.metadata = meta
        return validate(ds, source=did)

    return make
