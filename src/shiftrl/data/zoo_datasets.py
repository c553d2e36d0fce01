"""Datasets made from the behaviour-policy zoo: `<variant>/<level>-v0` for every variant in
`shiftrl.zoo.manifest()`, D4RL's five levels:

- `random`: uniform random actions in the variant's environment.
- `medium`, `expert`: the `medium` / `expert` snapshot, *sampled* (tanh-Gaussian), as
  D4RL's behaviour policies were stochastic.
- `medium-expert`: D4RL style, the medium and expert datasets stacked: size N holds
  `medium-v0` of size ceil(N/2) followed by `expert-v0` of size floor(N/2), both with the
  same seed, so the default (2M) is exactly `medium-v0` + `expert-v0` at their defaults.
- `medium-replay`: the replay buffer of the SAC run up to the medium snapshot, regenerated.
  The run took `start_steps` uniform-random transitions, then acted with a policy that was
  updated as it went; the zoo ships its actor every `snapshot_every` transitions
  (`replay-<steps>`). Each window [t_k, t_k+1) between snapshots is re-collected with the
  snapshot taken at its start (the first `start_steps` with uniform random actions), so the
  default size is the medium snapshot's `train_steps`, and the share of each window is
  the share it had in the buffer. This is an approximation of the buffer: the same
  policies in the same proportions, but fresh environment randomness, a policy that is
  frozen within each window (the run updated it every 1000 transitions), and each window
  ends with a cut episode (a timeout) where the run's episodes carried on.

NeoRL-style levels (`neorl-low`, `neorl-medium`, `neorl-high`, sizes in trajectories, the
NeoRL observation with the x-position) are registered here too; see `shiftrl.data.neorl`.

Base variants also answer to a short alias: `hopper/medium-v0` == `hopper-base/medium-v0`
(unless a built-in toy dataset already has that ID, as `pendulum/medium-v0` does).

Speed: the snapshots are evaluated in NumPy (`NumpyBehaviour`: the same tanh-Gaussian
actor as `shiftrl.zoo.BehaviourPolicy`, float32, noise from the collection's NumPy
generator), one call per step for all environments. A jitted JAX call costs 0.2-3 ms per
step on a busy 2-core CPU (dispatch and thread wake-up), more than the MuJoCo steps it
serves; the NumPy forward pass of a 2x128 actor costs tens of microseconds.

Determinism: every part of a dataset is collected with `collect(..., seed=s)` where
`s = SeedSequence([crc32(ID), seed, part])`; env resets and the policy's noise come from
`s` alone, so the same (ID, size, seed) gives byte-identical arrays on the same software
and CPU (`ds.checksum()`, recorded in `checksums.json`).
"""

from __future__ import annotations

import threading
import zlib
from typing import Any

import numpy as np

from shiftrl.data.dataset import DatasetMetadata, TransitionDataset, concatenate
from shiftrl.data.registry import REGISTRY, DatasetSpec, Progress, register, unregister

LEVELS = ("random", "medium", "medium-replay", "expert", "medium-expert")
DEFAULT_SIZE = 1_000_000
MAX_ENVS = 16
"""Environments stepped side by side (fewer for small datasets: one per 1000 transitions)."""
RANDOM = "uniform-random"
SCHEME = 1
"""Version of the collection scheme; bump when a change here changes the data."""

_synced: tuple[Any, ...] | None = None
# Threads that look datasets up at once (a sweep's workers) must not see the registry half
# rebuilt: one of them syncs while the others wait, then they find the key current.
_sync_lock = threading.Lock()


def sync() -> None:
    """Register the zoo's datasets, again whenever the manifest file (or the NeoRL levels'
    `neorl_behaviour.json`) changed."""
    global _synced
    from shiftrl import zoo
    from shiftrl.data import neorl

    key: tuple[Any, ...] = ()
    for path in (zoo.manifest_path(), neorl.CHOICES_FILE):
        try:
            st = path.stat()
            key += (str(path), st.st_mtime_ns, st.st_size)
        except OSError:
            key += (str(path), None, None)
    if key == _synced:
        return
    with _sync_lock:
        if key != _synced:
            _register_zoo_datasets()
            _synced = key


def _register_zoo_datasets() -> None:
    from shiftrl import zoo
    from shiftrl.data import neorl

    # register the new entries before dropping the gone ones, so a lookup in another thread
    # never misses a dataset that exists before and after
    specs = [
        (zoo_spec(variant, entry, level), _aliases(variant, level))
        for variant, entry in sorted(zoo.manifest()["policies"].items())
        for level in available_levels(entry)
    ]
    specs += [
        (neorl.neorl_spec(variant, level), _aliases(variant, level))
        for variant in neorl.neorl_variants()
        for level in neorl.LEVEL_FRACTIONS
    ]
    gone = {i for i, s in REGISTRY.items() if s.origin == "zoo"} - {s.dataset_id for s, _ in specs}
    for spec, aliases in specs:
        register(spec, aliases=aliases)
    for old in gone:
        unregister(old)


def available_levels(entry: dict[str, Any]) -> list[str]:
    snaps = {s["name"] for s in entry.get("snapshots", [])}
    need = {
        "random": set(),
        "medium": {"medium"},
        "medium-replay": {"medium"},
        "expert": {"expert"},
        "medium-expert": {"medium", "expert"},
    }
    return [lvl for lvl in LEVELS if need[lvl] <= snaps]


def dataset_id(variant: str, level: str) -> str:
    return f"{variant}/{level}-v0"


def _aliases(variant: str, level: str) -> tuple[str, ...]:
    return (f"{variant[: -len('-base')]}/{level}-v0",) if variant.endswith("-base") else ()


def _snapshots(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in entry["snapshots"]}


# ---- the spec of one dataset -----------------------------------------------------------------
def zoo_spec(variant: str, entry: dict[str, Any], level: str) -> DatasetSpec:
    did = dataset_id(variant, level)
    snaps = _snapshots(entry)
    info: dict[str, Any] = {"variant": variant, "level": level, "env_id": _env_id(variant, entry)}
    default = DEFAULT_SIZE
    if level == "random":
        behaviour = "uniform random actions"
        info["behaviour_return"] = entry.get("random_return")
        maker = _single(did, variant, RANDOM)
    elif level in ("medium", "expert"):
        s = snaps[level]
        behaviour = f"SAC snapshot '{level}' (train step {s['train_steps']}), sampled"
        info.update(behaviour_return=s.get("return_mean"), snapshot_train_steps=s["train_steps"])
        maker = _single(did, variant, level)
    elif level == "medium-expert":
        behaviour = "medium-v0 (first half) + expert-v0 (second half), D4RL style"
        info["behaviour_return"] = [snaps[k].get("return_mean") for k in ("medium", "expert")]
        default = 2 * DEFAULT_SIZE
        maker = _medium_expert(did, variant)
    else:  # medium-replay
        windows = replay_windows(entry)
        default = windows[-1][2]
        behaviour = (
            f"regenerated SAC replay buffer up to the medium snapshot: {entry.get('start_steps', 0)} "
            f"uniform-random transitions, then {len(windows) - 1} snapshot windows"
        )
        info["windows"] = [{"policy": p, "from": a, "to": b} for p, a, b in windows]
        maker = _medium_replay(did, variant, windows)
    info["behaviour"] = behaviour
    return DatasetSpec(
        did,
        maker,
        default,
        f"{variant}, {level}: {behaviour}",
        env_id=info["env_id"],
        origin="zoo",
        info=info,
        inputs=lambda: inputs_fingerprint(variant, level),
    )


def policies_used(entry: dict[str, Any], level: str) -> list[str]:
    """The snapshot names a level is collected with (uniform random needs none)."""
    if level in ("medium", "expert"):
        return [level]
    if level == "medium-expert":
        return ["medium", "expert"]
    if level == "medium-replay":
        return sorted({p for p, _, _ in replay_windows(entry) if p != RANDOM})
    return []


def inputs_fingerprint(variant: str, level: str) -> str:
    """sha256 of everything a build depends on besides (size, seed): the snapshot files and
    the manifest fields used, and this module's collection scheme version."""
    import hashlib
    import json

    from shiftrl import zoo

    entry = zoo.manifest()["policies"][variant]
    h = hashlib.sha256()
    fields = ("env_id", "action_low", "action_high", "hidden", "start_steps", "snapshot_every")
    used = {k: entry.get(k) for k in fields}
    used["windows"] = replay_windows(entry) if level == "medium-replay" else None
    h.update(json.dumps([SCHEME, level, used], sort_keys=True).encode())
    snaps = _snapshots(entry)
    for name in policies_used(entry, level):
        h.update(name.encode())
        h.update((zoo.weights_dir() / snaps[name]["file"]).read_bytes())
    return h.hexdigest()


def _env_id(variant: str, entry: dict[str, Any]) -> str:
    from shiftrl.envs import resolve

    return entry.get("env_id") or resolve(variant)


def _metadata(did: str, variant: str, level: str, extra: dict[str, Any]) -> DatasetMetadata:
    from shiftrl import zoo
    from shiftrl.envs import variant_of
    from shiftrl.envs.reference import reference_scores

    entry = zoo.manifest()["policies"][variant]
    env_id = _env_id(variant, entry)
    v = variant_of(variant)
    ref = reference_scores(env_id)
    return DatasetMetadata(
        name=did,
        env_id=env_id,
        dynamics=v.dynamics if v is not None else variant,
        ref_min_score=ref[0] if ref else None,
        ref_max_score=ref[1] if ref else None,
        provenance={
            "variant": variant,
            "level": level,
            "zoo_algorithm": entry.get("algorithm"),
            **extra,
        },
    )


def part_seed(did: str, seed: int, part: int = 0) -> int:
    """The collection seed of one part of a dataset: a function of (ID, seed, part) only."""
    ss = np.random.SeedSequence([zlib.crc32(did.encode()), seed, part])
    return int(ss.generate_state(1)[0])


def num_envs(size: int) -> int:
    return int(min(MAX_ENVS, max(1, -(-size // 1000))))


class NumpyBehaviour:
    """A zoo snapshot's tanh-Gaussian actor evaluated in NumPy, batched: obs [n, d] -> env actions.

    Same network and distribution as `shiftrl.zoo.BehaviourPolicy` (MLP with ReLU ->
    mean, raw log-std; log_std = clip(m * raw + b, -20, 2); a = tanh(mean + std * eps)),
    with eps drawn from the caller's `np.random.Generator`.
    """

    def __init__(self, params: dict[str, Any], action_low, action_high, deterministic=False):
        net = params["net"]
        self.layers = [
            (np.asarray(net[k]["kernel"], np.float32), np.asarray(net[k]["bias"], np.float32))
            for k in sorted(net, key=lambda k: int(k.split("_")[1]))
        ]
        self.mult = np.float32(params["log_std_multiplier"])
        self.offset = np.float32(params["log_std_offset"])
        self.low = np.asarray(action_low, np.float32)
        self.high = np.asarray(action_high, np.float32)
        self.deterministic = deterministic

    @classmethod
    def from_zoo(cls, variant: str, snapshot: str, deterministic: bool = False) -> NumpyBehaviour:
        from flax import serialization

        from shiftrl import zoo

        policy = zoo.load_behaviour(variant, snapshot)  # checks the names, one-line errors
        raw = (zoo.weights_dir() / policy.snapshot["file"]).read_bytes()
        params = serialization.msgpack_restore(raw)
        return cls(params, policy.entry["action_low"], policy.entry["action_high"], deterministic)

    def unit_action(self, obs: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        mean, raw = self._head(obs)
        if self.deterministic or rng is None:
            return np.tanh(mean)
        return self._sample(mean, raw, rng)

    def unit_mean_and_sample(
        self, obs: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """(tanh(mean), a tanh-Gaussian sample) from one forward pass; the sample draws from
        `rng` exactly as `unit_action` does."""
        mean, raw = self._head(obs)
        return np.tanh(mean), self._sample(mean, raw, rng)

    def _head(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(obs, np.float32)
        for w, b in self.layers[:-1]:
            x = np.maximum(x @ w + b, np.float32(0.0))
        w, b = self.layers[-1]
        mean, raw = np.split(x @ w + b, 2, axis=-1)
        return mean, raw

    def _sample(self, mean: np.ndarray, raw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        log_std = np.clip(self.mult * raw + self.offset, np.float32(-20.0), np.float32(2.0))
        eps = rng.standard_normal(mean.shape, dtype=np.float32)
        return np.tanh(mean + np.exp(log_std) * eps)

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        unit = self.unit_action(obs, rng)
        return self.low + (unit + np.float32(1.0)) * np.float32(0.5) * (self.high - self.low)


def _policy(variant: str, name: str):
    """A batch policy `(obs [n, d], rng) -> env actions`: uniform random or a zoo snapshot."""
    from shiftrl import zoo

    if name == RANDOM:
        entry = zoo.manifest()["policies"][variant]
        low = np.asarray(entry["action_low"], np.float64)
        high = np.asarray(entry["action_high"], np.float64)

        def uniform(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
            return rng.uniform(low, high, (len(obs), len(low)))

        return uniform
    return NumpyBehaviour.from_zoo(variant, name)


def _collect_part(
    did: str,
    variant: str,
    policy_name: str,
    size: int,
    seed: int,
    part: int,
    progress: Progress | None,
    offset: int,
) -> TransitionDataset:
    from shiftrl import zoo
    from shiftrl.data.collect import collect

    entry = zoo.manifest()["policies"][variant]
    report = None if progress is None else (lambda n: progress(offset + n))
    return collect(
        _env_id(variant, entry),
        _policy(variant, policy_name),
        size,
        num_envs=num_envs(size),
        seed=part_seed(did, seed, part),
        progress=report,
    )


def _single(did: str, variant: str, policy_name: str):
    level = did.split("/")[1].rsplit("-v", 1)[0]

    def make(size: int, seed: int, progress: Progress | None) -> TransitionDataset:
        from shiftrl import zoo

        ds = _collect_part(did, variant, policy_name, size, seed, 0, progress, 0)
        extra: dict[str, Any] = {"behaviour": RANDOM if policy_name == RANDOM else policy_name}
        if policy_name != RANDOM:
            snap = _snapshots(zoo.manifest()["policies"][variant])[policy_name]
            extra.update(
                snapshot=snap["file"],
                snapshot_train_steps=snap["train_steps"],
                behaviour_return=snap.get("return_mean"),
                sampling="stochastic (tanh-Gaussian sample)",
            )
        else:
            extra["behaviour_return"] = zoo.manifest()["policies"][variant].get("random_return")
        extra.update(num_envs=num_envs(size), collection_seed=part_seed(did, seed, 0))
        return _with_meta(ds, _metadata(did, variant, level, extra))

    return make


def _with_meta(ds: TransitionDataset, meta: DatasetMetadata) -> TransitionDataset:
    meta.action_low, meta.action_high = ds.metadata.action_low, ds.metadata.action_high
    ds.metadata = meta
    return ds


def _medium_expert(did: str, variant: str):
    def make(size: int, seed: int, progress: Progress | None) -> TransitionDataset:
        from shiftrl.data import registry

        parts, info = [], []
        sizes = {"medium": size - size // 2, "expert": size // 2}
        offset = 0
        for level, n in sizes.items():
            if n == 0:
                continue
            cid = dataset_id(variant, level)
            if registry.is_made(cid, n, seed):  # exactly what make_dataset would give
                part = registry.load_cached(cid, n, seed)
                if progress is not None:
                    progress(offset + n)
            else:
                report = None if progress is None else (lambda k, o=offset: progress(o + k))
                # verified as a whole against the medium-expert record, not part by part
                part = registry.make_dataset(cid, n, seed, progress=report, verify=False)
            parts.append(part)
            info.append({"dataset_id": cid, "size": n, "seed": seed, "sha256": part.checksum()})
            offset += n
        ds = concatenate(parts, name=did)
        extra = {"behaviour": "medium + expert", "parts": info}
        return _with_meta(ds, _metadata(did, variant, "medium-expert", extra))

    return make


def replay_windows(entry: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(policy, from, to) transition windows of the SAC replay buffer up to the medium snapshot."""
    snaps = _snapshots(entry)
    end = int(snaps["medium"]["train_steps"])
    start = min(int(entry.get("start_steps", 0)), end)
    replay = sorted(
        (int(s["train_steps"]), s["name"])
        for s in entry["snapshots"]
        if s["name"].startswith("replay-")
    )
    bounds = sorted({0, start, end} | {t for t, _ in replay if start <= t < end})
    windows = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        if a < start:
            name = RANDOM
        else:
            earlier = [n for t, n in replay if t <= a]
            name = earlier[-1] if earlier else (replay[0][1] if replay else "medium")
        windows.append((name, a, b))
    return windows


def split_sizes(total: int, weights: list[int]) -> list[int]:
    """`total` split in proportion to `weights` (largest remainder; sums to `total`)."""
    w = np.asarray(weights, np.float64)
    exact = total * w / w.sum()
    out = np.floor(exact).astype(np.int64)
    rest = total - int(out.sum())
    order = np.argsort(-(exact - out), kind="stable")
    out[order[:rest]] += 1
    return [int(x) for x in out]


def _medium_replay(did: str, variant: str, windows: list[tuple[str, int, int]]):
    def make(size: int, seed: int, progress: Progress | None) -> TransitionDataset:
        sizes = split_sizes(size, [b - a for _, a, b in windows])
        parts, info, offset = [], [], 0
        for k, ((name, a, b), n) in enumerate(zip(windows, sizes, strict=True)):
            if n == 0:
                continue
            parts.append(_collect_part(did, variant, name, n, seed, k, progress, offset))
            info.append({"policy": name, "buffer_from": a, "buffer_to": b, "transitions": n})
            offset += n
        ds = concatenate(parts, name=did)
        extra = {
            "behaviour": "regenerated replay buffer up to medium",
            "windows": info,
            "reconstruction": "each snapshot window re-collected with the snapshot at its start; "
            "fresh environment randomness; see shiftrl.data.zoo_datasets",
        }
        return _with_meta(ds, _metadata(did, variant, "medium-replay", extra))

    return make
