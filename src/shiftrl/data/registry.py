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

Checksums: `checksums.json` (shipped) records the sha256 of builds made by the project
(`shiftrl data make ID --record`); a build whose (id, size, seed) is recorded, from the same
inputs (zoo weights), must reproduce it, or `make_dataset` raises.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shiftrl.core.errors import DataError
from shiftrl.data.dataset import TransitionDataset

Progress = Callable[[int], None]
Maker = Callable[[int, int, Progress | None], TransitionDataset]
"""(size, seed, progress) -> dataset; `progress(n)` reports transitions collected so far."""

CHECKSUMS_FILE = Path(__file__).with_name("checksums.json")
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
    order = ("random", "medium", "medium-replay", "expert", "medium-expert")

    def key(did: str) -> tuple:
        variant, _, rest = did.partition("/")
        level = rest.rsplit("-v", 1)[0]
        return (variant, order.index(level) if level in order else len(order), level, did)

    return sorted(REGISTRY, key=key)


def is_registered(dataset_id: str) -> bool:
    _ensure_builtins()
    return dataset_id in REGISTRY or dataset_id in ALIASES


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
        "made_with": _versions(),
        "command": make_command(cid, n, seed),
    }
    recorded = recorded_build(cid, n, seed)
    same_inputs = recorded is not None and recorded.get("inputs_sha256") == inputs
    if verify and same_inputs and recorded["sha256"] != sha:
        raise DataError(
            f"{cid} (size {n}, seed {seed}) does not reproduce the recorded build: sha256 "
            f"{sha[:16]}... != recorded {recorded['sha256'][:16]}... (made with "
            f"{_fmt_versions(recorded.get('made_with', {}))}; here "
            f"{_fmt_versions(_versions())}); `shiftrl data make --no-verify` keeps it anyway"
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
    """The cached dataset, made (with a progress bar) and cached on first use."""
    cid = canonical(dataset_id)
    n = REGISTRY[cid].default_size if size is None else size
    _check_size_seed(n, seed)
    with _build_lock(cid, n, seed):  # another process making the same build: wait for it
        if is_made(cid, n, seed):
            try:
                inputs = cached_provenance(cid, n, seed).get("inputs_sha256")
            except DataError:  # a damaged cache entry of ours: build it again
                _note(f"{cid}: the cached copy's metadata.json is damaged; making it again")
                inputs = None
            else:
                if inputs == REGISTRY[cid].inputs():
                    return load_cached(cid, n, seed)
                _note(f"{cid}: the cached copy was made from other zoo weights; making it again")
            remove_cached(cid, n, seed)
        with MakeProgress(cid, n, enabled=progress) as bar:
            ds = make_dataset(cid, n, seed, progress=bar.update, verify=verify)
            bar.saving()
            save_cached(ds, cid, n, seed)
    return ds


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


def load_cached(dataset_id: str, size: int | None = None, seed: int = 0) -> TransitionDataset:
    """Read a cached build: the flat copy when it matches the recorded sha256, else Minari."""
    from shiftrl.data.io import load_minari, load_npz

    path = cache_dir(dataset_id, size, seed)
    flat = path / FLAT_FILE
    if flat.is_file():
        ds = load_npz(flat)
        if ds.checksum() == ds.metadata.provenance.get("sha256"):
            return ds
    return load_minari(minari_id(dataset_id, size, seed), root=data_root())


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
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataError(
            f"{path}: damaged cached dataset metadata ({type(e).__name__}); delete "
            f"{path.parent.parent} to rebuild the dataset"
        ) from None
    if not isinstance(raw, dict):
        raise DataError(
            f"{path}: damaged cached dataset metadata (not a JSON object); delete "
            f"{path.parent.parent} to rebuild the dataset"
        )
    return raw


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


# ---- recorded checksums ---------------------------------------------------------------------
def recorded_builds() -> dict[str, list[dict[str, Any]]]:
    if not CHECKSUMS_FILE.is_file():
        return {}
    return json.loads(CHECKSUMS_FILE.read_text()).get("datasets", {})


def recorded_build(dataset_id: str, size: int, seed: int) -> dict[str, Any] | None:
    for rec in recorded_builds().get(dataset_id, []):
        if rec["size"] == size and rec["seed"] == seed:
            return rec
    return None


def record_build(ds: TransitionDataset) -> dict[str, Any]:
    """Add (or replace) the record of a build made by `make_dataset` in `checksums.json`."""
    from shiftrl.envs.reference import normalized_score

    prov = ds.metadata.provenance
    s = ds.summary()
    ref = (
        (ds.metadata.ref_min_score, ds.metadata.ref_max_score)
        if ds.metadata.ref_min_score is not None and ds.metadata.ref_max_score is not None
        else None
    )
    rec = {
        "size": prov["size"],
        "seed": prov["seed"],
        "sha256": ds.checksum(),
        "transitions": s["transitions"],
        "episodes": s["episodes"],
        "return_mean": round(s["return_mean"], 3),
        "return_min": round(s["return_min"], 3),
        "return_max": round(s["return_max"], 3),
        "normalized_score": round(normalized_score(s["return_mean"], ref), 2) if ref else None,
        "inputs_sha256": prov.get("inputs_sha256"),
        "made_with": prov.get("made_with", _versions()),
    }
    data = (
        json.loads(CHECKSUMS_FILE.read_text())
        if CHECKSUMS_FILE.is_file()
        else {"format": 1, "datasets": {}}
    )
    builds = [
        r
        for r in data["datasets"].get(prov["dataset_id"], [])
        if (r["size"], r["seed"]) != (rec["size"], rec["seed"])
    ]
    data["datasets"][prov["dataset_id"]] = sorted(
        [*builds, rec], key=lambda r: (r["size"], r["seed"])
    )
    data["datasets"] = dict(sorted(data["datasets"].items()))
    CHECKSUMS_FILE.write_text(json.dumps(data, indent=1) + "\n")
    return rec


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("shiftrl", "numpy", "jax", "gymnasium", "mujoco"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def _fmt_versions(v: dict[str, str]) -> str:
    return ", ".join(f"{k} {x}" for k, x in v.items()) or "unknown versions"


# ---- progress bar ----------------------------------------------------------------------------
class MakeProgress:
    """A rich progress bar (on stderr) for making a dataset; a no-op when disabled."""

    def __init__(self, dataset_id: str, total: int, enabled: bool = True):
        self.enabled, self.dataset_id, self.total = enabled, dataset_id, total
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> MakeProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("transitions"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(f"making {self.dataset_id}", total=self.total)
        return self

    def update(self, done: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=min(done, self.total))

    def saving(self) -> None:
        if self._progress is not None:
            self._progress.update(
                self._task, completed=self.total, description=f"saving {self.dataset_id}"
            )

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
