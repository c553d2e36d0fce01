"""Built-in datasets by ID, made on first use and cached as Minari datasets.

An ID names an environment variant and a level: `pendulum/medium-v0` (toy tasks with
scripted experts, `data/builtin.py`) or, from the behaviour-policy zoo,
`hopper-mass-2.0/medium-v0` (`data/zoo_datasets.py`); base variants also answer to the
short alias `hopper/medium-v0`. `get_dataset(id, size, seed)` returns the cached copy
under $SHIFTRL_DATA (default ~/.shiftrl/data) or makes it (deterministically from the
seed, with a progress bar) and caches it. `load_dataset` in `data.io` falls back to this
registry, so every command that takes a dataset path also takes an ID.

Storage: $SHIFTRL_DATA is a Minari root (`MINARI_DATASETS_PATH=$SHIFTRL_DATA` makes
`minari.load_dataset` see the datasets). Minari ids allow no dots, so an ID maps to
`shiftrl/<variant with '.' -> '_'>/<level>-v<N>`, e.g. `hopper-mass-2.0/medium-v0` ->
`shiftrl/hopper-mass-2_0/medium-v0`; a build with a non-default size or a seed other
than 0 adds `-n<size>-s<seed>` to the name (`shiftrl/hopper-mass-2_0/medium-n5000-s1-v0`).
Minari keeps one hdf5 group per episode, which is slow to read for datasets of many
episodes (1M pendulum transitions, 5,000 episodes: 19 s; 1M random-action hopper
transitions are ~50k episodes), so each cached dataset also holds a flat copy
(`shiftrl-flat.npz`, checked against the recorded sha256; 0.5 s for the same data); the
Minari files stay the interchange format. The flat copy is written last, so its presence
marks a complete build; a lock file per build makes concurrent first uses build once.

Checksums: `checksums.json` (shipped) records the sha256, statistics, library versions and
platform of builds made by the project (`shiftrl data make ID --record`). A build whose
(id, size, seed) is recorded, from the same inputs (zoo weights), is checked against the
record (`shiftrl.data.verify`): on the recorded platform and versions its sha256 must match;
elsewhere its statistics must, and it is kept with its own sha256 and a one-line warning.
Every load of a cached build checks its bytes against the sha256 it was cached with.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shiftrl.core.errors import DataError
from shiftrl.data import records
from shiftrl.data.dataset import TransitionDataset
from shiftrl.data.progress import MakeProgress
from shiftrl.data.verify import platform_fingerprint

Progress = Callable[[int], None]
Maker = Callable[[int, int, Progress | None], TransitionDataset]
"""(size, seed, progress) -> dataset; `progress(n)` reports how much of `size` is collected
(transitions, or trajectories for a spec whose `size_unit` says so)."""

FLAT_FILE = "shiftrl-flat.npz"
MINARI_NAMESPACE = "shiftrl"


@dataclass(frozen=True)
class DatasetSpec:
    dataset_id: str
    maker: Maker
    default_size: int
    description: str
    env_id: str | None = None
    """Gymnasium id the data is collected in."""
    origin: str = "toy"
    """'toy' (scripted behaviour, no zoo needed) or 'zoo' (behaviour-policy snapshots)."""
    info: dict[str, Any] = field(default_factory=dict, compare=False)
    """What `data info` shows before the dataset is made: variant, level, behaviour, ..."""
    inputs: Callable[[], str] = field(default=lambda: "builtin", compare=False)
    """Fingerprint of what the build depends on besides (size, seed): for zoo datasets the
    sha256 of the snapshot files and manifest fields used. A recorded checksum is checked
    only against a build from the same inputs (re-exported weights make new data)."""
    size_unit: str = "transitions"
    """What `size` counts: 'transitions', or 'trajectories' for NeoRL-style levels (whole
    episodes, NeoRL's `train_num`)."""


REGISTRY: dict[str, DatasetSpec] = {}
ALIASES: dict[str, str] = {}
"""Short names: `hopper/medium-v0` -> `hopper-base/medium-v0`."""


def register(spec: DatasetSpec, aliases: tuple[str, ...] = ()) -> None:
    REGISTRY[spec.dataset_id] = spec
    ALIASES.pop(spec.dataset_id, None)
    for a in aliases:
        if a not in REGISTRY:  # a real ID always wins over an alias
            ALIASES[a] = spec.dataset_id


def unregister(dataset_id: str) -> None:
    REGISTRY.pop(dataset_id, None)
    for a in [a for a, t in ALIASES.items() if t == dataset_id]:
        del ALIASES[a]


def data_root() -> Path:
    return Path(os.environ.get("SHIFTRL_DATA") or Path.home() / ".shiftrl" / "data").expanduser()


def _ensure_builtins() -> None:
    # importing `builtin` registers the toy datasets (once)
    from shiftrl.data import builtin, zoo_datasets  # noqa: F401

    zoo_datasets.sync()  # (re)registers the zoo's datasets when its manifest changed


def dataset_ids() -> list[str]:
    """Registered IDs, by variant then level (D4RL's order: random ... medium-expert)."""
    _ensure_builtins()
    order = (
        "random",
        "medium",
        "medium-replay",
        "expert",
        "medium-expert",
        "neorl-low",
        "neorl-medium",
        "neorl-high",
    )

    def key(did: str) -> tuple:
        variant, _, rest = did.partition("/")
        level = rest.rsplit("-v", 1)[0]
        return (variant, order.index(level) if level in order else len(order), level, did)

    return sorted(REGISTRY, key=key)


def is_registered(dataset_id: str) -> bool:
    """A registered ID, alias, or size-qualified ID (`parse_id`)."""
    try:
        parse_id(dataset_id)
    except DataError:
        return False
    return True


_QUALIFIED = re.compile(r"(?P<base>[^/\s]+/[-\w]+?)-n(?P<size>\d+)(?:-s(?P<seed>\d+))?-v(?P<v>\d+)")


def parse_id(dataset_id: str) -> tuple[str, int | None, int | None]:
    """An ID, an alias, or a size-qualified ID `VARIANT/LEVEL-n<size>[-s<seed>]-vN` (the name
    the build is cached under, e.g. `hopper/medium-n100000-s1-v0`) -> (registered ID, size,
    seed), size and seed None where the ID does not name them. Every command and function
    that takes a dataset ID takes the qualified form too."""
    _ensure_builtins()
    if dataset_id in REGISTRY or dataset_id in ALIASES:
        return canonical(dataset_id), None, None
    m = _QUALIFIED.fullmatch(dataset_id)
    if m is not None:
        base = f"{m['base']}-v{m['v']}"
        if base in REGISTRY or base in ALIASES:
            return canonical(base), int(m["size"]), None if m["seed"] is None else int(m["seed"])
    raise DataError(unknown_id_message(dataset_id))


def resolve_build(dataset_id: str, size: int | None, seed: int) -> tuple[str, int | None, int]:
    """(registered ID, size, seed) of a build named by an ID that may carry its size and seed
    (`parse_id`) and by `size`/`seed` arguments (`--size`/`--seed`), which must agree with it."""
    cid, id_size, id_seed = parse_id(dataset_id)
    if id_size is not None:
        if size is not None and size != id_size:
            raise DataError(f"'{dataset_id}' names size {id_size}; size {size} disagrees")
        size = id_size
    if id_seed is not None:
        if seed not in (0, id_seed):
            raise DataError(f"'{dataset_id}' names seed {id_seed}; seed {seed} disagrees")
        seed = id_seed
    return cid, size, seed


def qualified_id(dataset_id: str, size: int | None = None, seed: int = 0) -> str:
    """The ID that names this build: the plain ID for the default size and seed 0, else the
    size-qualified form (`hopper-base/medium-n100000-s1-v0`)."""
    cid = canonical(dataset_id)
    n = REGISTRY[cid].default_size if size is None else size
    if n == REGISTRY[cid].default_size and seed == 0:
        return cid
    base, _, version = cid.rpartition("-v")
    return f"{base}-n{n}{f'-s{seed}' if seed else ''}-v{version}"


def canonical(dataset_id: str) -> str:
    """The registered ID behind an ID or alias; a one-line DataError (with close matches) if none."""
    _ensure_builtins()
    if dataset_id in REGISTRY:
        return dataset_id
    if dataset_id in ALIASES:
        return ALIASES[dataset_id]
    raise DataError(unknown_id_message(dataset_id))


def spec_of(dataset_id: str) -> DatasetSpec:
    return REGISTRY[canonical(dataset_id)]


def unknown_id_message(dataset_id: str) -> str:
    _ensure_builtins()
    from shiftrl.envs.registry import variant_of

    variant = dataset_id.split("/")[0]
    env_variant = variant_of(variant) or variant_of(f"{variant}-base")
    zoo_variants = {s.info.get("variant") for s in REGISTRY.values() if s.origin == "zoo"}
    if env_variant is not None and env_variant.name not in zoo_variants:
        return (
            f"unknown dataset id '{dataset_id}': the behaviour-policy zoo has no policies for "
            f"'{env_variant.name}' yet (`shiftrl zoo list`), so its datasets cannot be made; "
            "`shiftrl data list` shows what can"
        )
    close = difflib.get_close_matches(dataset_id, [*REGISTRY, *ALIASES], n=3, cutoff=0.6)
    hint = (
        f"; did you mean {', '.join(close)}?"
        if close
        else "; `shiftrl data list` shows the built-in datasets"
    )
    return f"unknown dataset id '{dataset_id}'{hint}"


# ---- cache locations ---------------------------------------------------------------------
def minari_id(dataset_id: str, size: int | None = None, seed: int = 0) -> str:
    """Our ID -> the Minari id it is stored under (see the module docstring)."""
    cid = canonical(dataset_id)
    spec = REGISTRY[cid]
    m = re.fullmatch(r"(?P<variant>[^/]+)/(?P<level>[-\w]+?)-v(?P<version>\d+)", cid)
    if m is None:
        raise DataError(f"dataset id '{cid}' is not of the form VARIANT/LEVEL-vN")
    name = m["level"]
    n = spec.default_size if size is None else size
    if n != spec.default_size or seed != 0:
        name += f"-n{n}-s{seed}"
    return f"{MINARI_NAMESPACE}/{m['variant'].replace('.', '_')}/{name}-v{m['version']}"


def cache_dir(dataset_id: str, size: int | None = None, seed: int = 0) -> Path:
    return data_root() / minari_id(dataset_id, size, seed)


def is_made(dataset_id: str, size: int | None = None, seed: int = 0) -> bool:
    """A complete cached build: Minari's metadata and the flat copy (written last) exist."""
    path = cache_dir(dataset_id, size, seed)
    return (path / "data" / "metadata.json").is_file() and (path / FLAT_FILE).is_file()


def cached_builds(dataset_id: str) -> list[dict[str, Any]]:
    """Every cached build of an ID: size, seed, Minari id, path, transitions, episodes."""
    cid = canonical(dataset_id)
    spec = REGISTRY[cid]
    default = cache_dir(cid)
    out = []
    for d in sorted(default.parent.glob(f"{default.name.rsplit('-v', 1)[0]}*-v*")):
        meta_file = d / "data" / "metadata.json"
        if not (meta_file.is_file() and (d / FLAT_FILE).is_file()):
            continue  # not a complete build
        tail = d.name[len(default.name.rsplit("-v", 1)[0]) :]
        m = re.fullmatch(r"(?:-n(\d+)-s(\d+))?-v\d+", tail)
        if m is None:
            continue
        size = int(m[1]) if m[1] else spec.default_size
        seed = int(m[2]) if m[2] else 0
        meta = _read_cached_json(meta_file)
        out.append(
            {
                "size": size,
                "seed": seed,
                "minari_id": meta.get("dataset_id"),
                "path": str(d),
                "transitions": meta.get("total_steps"),
                "episodes": meta.get("total_episodes"),
            }
        )
    return out


# ---- making, saving, loading ----------------------------------------------------------------
def make_dataset(
    dataset_id: str,
    size: int | None = None,
    seed: int = 0,
    *,
    progress: Progress | None = None,
    verify: bool = True,
) -> TransitionDataset:
    """Build a registered dataset from scratch (no cache). With `verify`, a build whose
    (id, size, seed) has a recorded sha256 must reproduce it."""
    cid = canonical(dataset_id)
    spec = REGISTRY[cid]
    n = spec.default_size if size is None else size
    _check_size_seed(n, seed)
    inputs = spec.inputs()
    ds = spec.maker(n, seed, progress)
    sha = ds.checksum()
    ds.metadata.name = cid
    ds.metadata.provenance = {
        **ds.metadata.provenance,
        "dataset_id": cid,
        "size": n,
        "seed": seed,
        "sha256": sha,
        "inputs_sha256": inputs,
        "made_with": records.versions(),
        "command": make_command(cid, n, seed),
    }
    ds.metadata.provenance["made_on"] = platform_fingerprint()
    ds.metadata.provenance["verification"] = records.check_build(
        ds, cid, n, seed, inputs, verify=verify
    )
    return ds


def _check_size_seed(size: int, seed: int) -> None:
    if size <= 0:
        raise DataError(f"dataset size must be positive, got {size}")
    if seed < 0:
        raise DataError(f"dataset seed must be non-negative, got {seed}")


def get_dataset(
    dataset_id: str,
    size: int | None = None,
    seed: int = 0,
    *,
    progress: bool = True,
    verify: bool = True,
) -> TransitionDataset:
    """The cached dataset, made (with a progress bar) and cached on first use. `dataset_id`
    may name its size and seed (`parse_id`); `size`/`seed` given as well must agree."""
    cid, size, seed = resolve_build(dataset_id, size, seed)
    n = REGISTRY[cid].default_size if size is None else size
    _check_size_seed(n, seed)
    with _build_lock(cid, n, seed):  # another process making the same build: wait for it
        if is_made(cid, n, seed):
            try:
                prov = cached_provenance(cid, n, seed)
            except DataError:  # a damaged cache entry of ours: build it again
                _note(f"{cid}: the cached copy's metadata.json is damaged; making it again")
            else:
                if prov.get("inputs_sha256") == REGISTRY[cid].inputs():
                    return load_cached(cid, n, seed, provenance=prov)
                _note(f"{cid}: the cached copy was made from other zoo weights; making it again")
            remove_cached(cid, n, seed)
        unit = REGISTRY[cid].size_unit
        _note(
            f"{qualified_id(cid, n, seed)} is not cached here: making it now ({n:,} {unit}"
            f"{estimate(cid, n)}), then caching it under {data_root()}"
        )
        with MakeProgress(cid, n, enabled=progress, unit=unit) as bar:
            ds = make_dataset(cid, n, seed, progress=bar.update, verify=verify)
            bar.saving()
            save_cached(ds, cid, n, seed)
    return ds


SECONDS_PER_TRANSITION = {
    "pointreach": 1.3e-5,
    "pendulum": 1.3e-5,
    "halfcheetah": 4.5e-5,
    "hopper": 8.5e-5,
    "walker2d": 1.05e-4,
}
"""Collection time per transition on one core of the project's 2-core CPU machine, measured
by `scripts/measure_dataset_spread.py` (50k-transition builds; hopper and walker2d vary with
how often episodes end, as every reset costs)."""


def estimate(dataset_id: str, size: int) -> str:
    """', about 1.4 min on the project's 2-core machine' (empty for robots not measured).
    Sizes in trajectories are costed at their longest, 1000 steps each ('up to')."""
    spec = REGISTRY[canonical(dataset_id)]
    variant = str(spec.info.get("variant", dataset_id))
    rate = SECONDS_PER_TRANSITION.get(variant.split("-")[0].split("/")[0])
    if rate is None:
        return ""
    if spec.size_unit == "trajectories":
        rate *= TRAJECTORY_STEPS
    seconds = rate * size
    if seconds < 1:
        took = "under a second"
    else:
        took = f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
    about = "up to" if spec.size_unit == "trajectories" else "about"
    return f", {about} {took} on the project's 2-core CPU machine"


TRAJECTORY_STEPS = 1000
"""The MuJoCo time limit: the longest trajectory of a size given in trajectories."""


@contextlib.contextmanager
def _build_lock(dataset_id: str, size: int, seed: int) -> Iterator[None]:
    """An exclusive lock file per build under $SHIFTRL_DATA/.locks (no-op without fcntl)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; concurrent first uses may both build
        yield
        return
    lock = data_root() / ".locks" / (minari_id(dataset_id, size, seed).replace("/", "+") + ".lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        f = open(lock, "a")  # noqa: SIM115  (held for the duration of the block)
    except OSError as e:
        raise DataError(f"cannot write to the dataset cache {data_root()}: {e}") from e
    try:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


def save_cached(ds: TransitionDataset, dataset_id: str, size: int | None, seed: int) -> Path:
    """Write `ds` as the Minari dataset of (id, size, seed), then its flat fast-load copy
    (written last and atomically: its presence marks a complete build)."""
    from shiftrl.data.io import save_minari, save_npz

    target = cache_dir(dataset_id, size, seed)
    if target.exists():
        shutil.rmtree(target)
    path = save_minari(ds, minari_id(dataset_id, size, seed), root=data_root())
    save_npz(ds, path / FLAT_FILE)
    return path


def load_cached(
    dataset_id: str,
    size: int | None = None,
    seed: int = 0,
    *,
    provenance: dict[str, Any] | None = None,
) -> TransitionDataset:
    """Read a cached build (the flat copy, else the Minari files) and check its bytes against
    the sha256 it was cached with (Minari's metadata.json, or its `provenance` already read
    from there): a cached copy that was changed or damaged is an error that says how to make
    it again, never silently used."""
    from shiftrl.data.io import load_minari, load_npz

    path = cache_dir(dataset_id, size, seed)
    flat = path / FLAT_FILE
    if provenance is None:
        provenance = cached_provenance(dataset_id, size, seed)
    expected = provenance.get("sha256")
    try:
        if flat.is_file():
            ds = load_npz(flat)
        else:
            ds = load_minari(minari_id(dataset_id, size, seed), root=data_root())
    except DataError as e:
        raise DataError(f"{_damaged(dataset_id, size, seed)}: {e}") from e
    sha = ds.checksum()
    if expected is None or sha != expected:
        why = (
            "its metadata.json records no sha256"
            if expected is None
            else f"sha256 {sha[:16]}... != {expected[:16]}... recorded when it was made"
        )
        raise DataError(f"{_damaged(dataset_id, size, seed)} ({why})")
    return ds


def _damaged(dataset_id: str, size: int | None, seed: int) -> str:
    cmd = make_command(dataset_id, size, seed)
    return (
        f"the cached copy of {canonical(dataset_id)} at {cache_dir(dataset_id, size, seed)} was "
        f"changed or damaged since it was made; make it again with `{cmd} --force`"
    )


def remove_cached(dataset_id: str, size: int | None = None, seed: int = 0) -> bool:
    path = cache_dir(dataset_id, size, seed)
    if path.exists():
        shutil.rmtree(path)
        return True
    return False


def cached_metadata(dataset_id: str, size: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Minari's metadata.json of a cached build (no arrays are read)."""
    meta_file = cache_dir(dataset_id, size, seed) / "data" / "metadata.json"
    return _read_cached_json(meta_file) if meta_file.is_file() else {}


def _read_cached_json(path: Path) -> dict[str, Any]:
    """A cached build's metadata.json, or one line naming the damaged cache folder."""
    from shiftrl.core.jsonfile import read_json_object

    return read_json_object(
        path,
        f"damaged cached dataset metadata; delete {path.parent.parent} to rebuild the dataset",
        DataError,
    )


def cached_provenance(dataset_id: str, size: int | None = None, seed: int = 0) -> dict[str, Any]:
    """The provenance recorded with a cached build (read from metadata.json, no arrays)."""
    from shiftrl.data.io import METADATA_KEY, metadata_from_json

    raw = cached_metadata(dataset_id, size, seed)
    if METADATA_KEY not in raw:
        return {}
    return metadata_from_json(raw[METADATA_KEY], str(cache_dir(dataset_id, size, seed))).provenance


def _note(msg: str) -> None:
    import sys

    print(f"shiftrl: {msg}", file=sys.stderr)


def make_command(dataset_id: str, size: int | None = None, seed: int = 0) -> str:
    spec = REGISTRY[canonical(dataset_id)]
    cmd = f"shiftrl data make {spec.dataset_id}"
    if size and size != spec.default_size:
        cmd += f" --size {size}"
    if seed:
        cmd += f" --seed {seed}"
    return cmd
