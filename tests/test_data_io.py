"""Dataset files: round trips, D4RL-style files, validation and corrupt-file errors."""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from shiftrl.core.errors import DataError
from shiftrl.data.dataset import ARRAY_FIELDS, DatasetMetadata, TransitionDataset
from shiftrl.data.io import (
    load_dataset,
    load_hdf5,
    load_minari,
    load_npz,
    save_dataset,
    save_minari,
)
from shiftrl.data.validate import validate

OBS_DIM, ACT_DIM = 3, 2
EP_LENGTHS = (4, 5, 3)  # ends: terminal, timeout, cut off by the end of the log
MINARI_ID = "shiftrl/toy-v0"


def _episodes(rng: np.random.Generator) -> list[np.ndarray]:
    """Per-episode observation sequences with T+1 rows (contiguous by construction)."""
    return [rng.normal(size=(t + 1, OBS_DIM)).astype(np.float32) for t in EP_LENGTHS]


@pytest.fixture
def ds() -> TransitionDataset:
    rng = np.random.default_rng(0)
    seqs = _episodes(rng)
    n = sum(EP_LENGTHS)
    terminals = np.zeros(n, bool)
    timeouts = np.zeros(n, bool)
    terminals[EP_LENGTHS[0] - 1] = True
    timeouts[EP_LENGTHS[0] + EP_LENGTHS[1] - 1] = True
    return TransitionDataset(
        observations=np.concatenate([s[:-1] for s in seqs]),
        actions=rng.uniform(-1.5, 1.5, size=(n, ACT_DIM)).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32),
        next_observations=np.concatenate([s[1:] for s in seqs]),
        terminals=terminals,
        timeouts=timeouts,
        metadata=DatasetMetadata(
            name="toy",
            env_id="Hopper-v5",
            dynamics="mass-2.0",
            ref_min_score=-20.5,
            ref_max_score=3234.3,
            action_low=[-2.0, -2.0],
            action_high=[2.0, 2.0],
            provenance={"policy": "sac", "seed": 3, "nested": {"steps": [1, 2]}},
        ),
    )


def _assert_same(a: TransitionDataset, b: TransitionDataset) -> None:
    for k in ARRAY_FIELDS:
        x, y = getattr(a, k), getattr(b, k)
        assert x.dtype == y.dtype, k
        assert np.array_equal(x, y), k
    assert a.metadata == b.metadata


def _assert_one_line(err: pytest.ExceptionInfo[DataError], *needles: str) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, msg
    return msg


# ---- round trips ------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".npz", ".hdf5", ".h5"])
def test_file_round_trip(ds: TransitionDataset, tmp_path: Path, suffix: str) -> None:
    path = save_dataset(ds, tmp_path / f"toy{suffix}")
    assert path == tmp_path / f"toy{suffix}" and path.is_file()
    _assert_same(load_dataset(str(path)), ds)
    assert not list(tmp_path.glob(".*tmp*"))  # the atomic write cleaned up


def test_npz_is_loadable_without_pickle(ds: TransitionDataset, tmp_path: Path) -> None:
    path = save_dataset(ds, tmp_path / "toy.npz")
    with np.load(path, allow_pickle=False) as z:
        assert json.loads(str(z["metadata_json"]))["name"] == "toy"


def test_minari_round_trip(
    ds: TransitionDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import minari

    elsewhere = str(tmp_path / "elsewhere")
    monkeypatch.setenv("MINARI_DATASETS_PATH", elsewhere)
    root = tmp_path / "minari"
    target = save_minari(ds, MINARI_ID, root=root)
    assert os.environ["MINARI_DATASETS_PATH"] == elsewhere  # restored
    assert target == root / MINARI_ID
    _assert_same(load_minari(MINARI_ID, root=root), ds)
    _assert_same(load_dataset(str(target)), ds)  # a directory path works too
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    _assert_same(load_dataset(MINARI_ID), ds)  # and a local id

    # what minari itself sees: per-episode structure and its own ref-score fields
    mds = minari.load_dataset(MINARI_ID, download=False)
    assert mds.total_episodes == 3 and mds.total_steps == len(ds)
    first = next(mds.iterate_episodes())
    assert first.observations.shape == (EP_LENGTHS[0] + 1, OBS_DIM)
    assert bool(first.terminations[-1]) and not first.truncations.any()
    meta = mds.storage.metadata
    assert (meta["ref_min_score"], meta["ref_max_score"]) == (-20.5, 3234.3)
    assert mds.env_spec is None  # a dynamics variant is not the registered env


def test_minari_base_dynamics_records_env_spec(
    ds: TransitionDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import minari

    ds.metadata.dynamics = "base"
    save_minari(ds, "toy-v1", root=tmp_path)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    assert minari.load_dataset("toy-v1").env_spec.id == "Hopper-v5"
    _assert_same(load_minari("toy-v1"), ds)


def test_minari_rejects_non_contiguous_and_existing(ds: TransitionDataset, tmp_path: Path) -> None:
    broken = ds.take(np.delete(np.arange(len(ds)), 1))  # a dropped row inside episode 0
    with pytest.raises(DataError) as err:
        save_minari(broken, "broken-v0", root=tmp_path)
    _assert_one_line(err, "contiguous", "episode 0")
    assert not (tmp_path / "broken-v0").exists()
    save_minari(ds, "toy-v0", root=tmp_path)
    with pytest.raises(DataError) as err:
        save_minari(ds, "toy-v0", root=tmp_path)
    _assert_one_line(err, "already exists")
    with pytest.raises(DataError) as err:
        load_minari("nope-v0", root=tmp_path)
    _assert_one_line(err, "nope-v0")


# ---- D4RL-style files ----------------------------------------------------------------------
def _write_d4rl(path: Path, ds: TransitionDataset, *, timeouts: bool = True) -> np.ndarray:
    """A raw D4RL file: one row per env step, no next_observations, float terminals."""
    with h5py.File(path, "w") as f:
        f["observations"] = ds.observations
        f["actions"] = ds.actions
        f["rewards"] = ds.rewards
        f["terminals"] = ds.terminals.astype(np.float32)
        if timeouts:
            f["timeouts"] = ds.timeouts
        f["infos/qpos"] = np.zeros((len(ds), 4))
        f["metadata/algorithm"] = "SAC"
        f["metadata/iteration"] = 7
        f["metadata/policy/fc0/weight"] = np.ones((8, 8))
    return ds.observations


def test_d4rl_hdf5_without_next_observations(ds: TransitionDataset, tmp_path: Path) -> None:
    obs = _write_d4rl(tmp_path / "hopper-medium.hdf5", ds)
    out = load_dataset(str(tmp_path / "hopper-medium.hdf5"))

    # dropped: the timeout row ending episode 1 (8) and the cut-off last row (11)
    kept = np.array([0, 1, 2, 3, 4, 5, 6, 7, 9, 10])
    assert len(out) == len(kept)
    assert np.array_equal(out.observations, obs[kept])
    assert np.array_equal(out.actions, ds.actions[kept])
    assert np.array_equal(out.rewards, ds.rewards[kept])
    assert out.terminals.dtype == np.bool_
    assert np.flatnonzero(out.terminals).tolist() == [3]
    # the rows before the dropped ones end their episodes as timeouts, not terminals
    assert np.flatnonzero(out.timeouts).tolist() == [7, 9]
    assert out.num_episodes == 3
    # next_obs is the true next observation inside an episode ...
    for i in (0, 1, 2, 4, 5, 6, 7, 8, 9):
        assert np.array_equal(out.next_observations[i], obs[kept[i] + 1]), i
    # ... and the terminal row (never bootstrapped) points at itself, not the next episode
    assert np.array_equal(out.next_observations[3], obs[3])

    assert out.metadata.name == "hopper-medium"
    prov = out.metadata.provenance
    assert prov["hdf5_metadata"] == {"algorithm": "SAC", "iteration": 7}
    assert prov["next_observations_derived"] is True and prov["rows_dropped"] == 2
    assert prov["action_bounds_inferred"] is True


def test_d4rl_hdf5_without_timeouts(ds: TransitionDataset, tmp_path: Path) -> None:
    _write_d4rl(tmp_path / "old.hdf5", ds, timeouts=False)
    out = load_hdf5(tmp_path / "old.hdf5")
    # episodes split only at terminals; only the final (unflagged) row is dropped
    assert len(out) == len(ds) - 1
    assert np.flatnonzero(out.terminals).tolist() == [3]
    assert np.flatnonzero(out.timeouts).tolist() == [len(ds) - 2]


@pytest.mark.parametrize("fmt", ["npz", "hdf5", "minari", "d4rl"])
def test_timeouts_never_become_terminals(ds: TransitionDataset, tmp_path: Path, fmt: str) -> None:
    if fmt == "minari":
        save_minari(ds, MINARI_ID, root=tmp_path)
        out = load_minari(MINARI_ID, root=tmp_path)
    elif fmt == "d4rl":
        _write_d4rl(tmp_path / "d.hdf5", ds)
        out = load_dataset(str(tmp_path / "d.hdf5"))
    else:
        out = load_dataset(str(save_dataset(ds, tmp_path / f"toy.{fmt}")))
    assert out.terminals.sum() == 1 and out.timeouts.sum() >= 1
    assert not np.any(out.terminals & out.timeouts)
    assert out.episode_lengths().size == 3


# ---- validation ------------------------------------------------------------------------------
def _nan_rewards(d: dict) -> None:
    d["rewards"][5] = np.nan


def _inf_obs(d: dict) -> None:
    d["observations"][2, 1] = np.inf


def _short_actions(d: dict) -> None:
    d["actions"] = d["actions"][:-1]


def _terminal_two(d: dict) -> None:
    d["terminals"] = d["terminals"].astype(np.int64)
    d["terminals"][4] = 2


def _out_of_bounds(d: dict) -> None:
    d["actions"][6, 1] = 2.5


@pytest.mark.parametrize(
    ("mutate", "needles"),
    [
        (_nan_rewards, ("'rewards'", "1 NaN", "row 5")),
        (_inf_obs, ("'observations'", "infinite", "row 2")),
        (_short_actions, ("'actions'", "11")),
        (_terminal_two, ("'terminals'", "row 4")),
        (_out_of_bounds, ("'actions'", "bounds", "row 6")),
    ],
)
def test_validation_errors(ds: TransitionDataset, tmp_path: Path, mutate, needles) -> None:
    arrays = {k: v.copy() for k, v in ds.arrays().items()}
    mutate(arrays)
    with pytest.raises(DataError) as err:
        validate(TransitionDataset(**arrays, metadata=ds.metadata), source="data/hop.hdf5")
    _assert_one_line(err, "data/hop.hdf5", *needles)
    # the same problem in a file is reported against that file
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays, metadata_json=np.array(json.dumps(ds.metadata.to_json())))
    with pytest.raises(DataError) as err:
        load_dataset(str(path))
    _assert_one_line(err, "bad.npz", needles[0])


def test_validate_coerces_and_fixes_without_mutating(ds: TransitionDataset) -> None:
    terminals = ds.terminals.astype(np.float64)  # 0/1 floats are fine
    timeouts = ds.timeouts.copy()
    timeouts[3] = True  # both terminal and timeout on row 3
    raw = dataclasses.replace(
        ds,
        observations=ds.observations.astype(np.float64),
        rewards=ds.rewards[:, None],
        terminals=terminals,
        timeouts=timeouts,
    )
    out = validate(raw)
    assert out.observations.dtype == np.float32 and out.rewards.shape == (len(ds),)
    assert out.terminals.dtype == np.bool_ and out.terminals[3] and not out.timeouts[3]
    assert timeouts[3]  # the caller's array is untouched


def test_action_bounds_inferred(ds: TransitionDataset) -> None:
    meta = DatasetMetadata(name="x")
    unit = validate(dataclasses.replace(ds, actions=np.clip(ds.actions, -1, 1), metadata=meta))
    assert unit.metadata.action_low == [-1.0, -1.0] and unit.metadata.action_high == [1.0, 1.0]
    assert unit.metadata.provenance["action_bounds_inferred"] is True
    wide = validate(dataclasses.replace(ds, metadata=meta))
    assert wide.metadata.action_low == ds.actions.min(axis=0).tolist()
    assert wide.metadata.action_high == ds.actions.max(axis=0).tolist()
    assert meta.action_low is None and meta.provenance == {}  # caller's metadata untouched


# ---- bad files ---------------------------------------------------------------------------------
def test_corrupt_and_missing_files(
    ds: TransitionDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    garbage = tmp_path / "garbage.hdf5"
    garbage.write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(DataError) as err:
        load_dataset(str(garbage))
    _assert_one_line(err, "garbage.hdf5", "HDF5")

    for suffix in (".npz", ".hdf5"):
        good = save_dataset(ds, tmp_path / f"good{suffix}")
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        with pytest.raises(DataError) as err:
            load_dataset(str(cut))
        _assert_one_line(err, cut.name)

    not_npz = tmp_path / "notes.npz"
    with zipfile.ZipFile(not_npz, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(DataError) as err:
        load_npz(not_npz)
    _assert_one_line(err, "notes.npz", "missing required")

    pickled = tmp_path / "pickled.npz"
    arrays = ds.arrays()
    np.savez(pickled, **{**arrays, "rewards": np.array(list(ds.rewards), dtype=object)})
    with pytest.raises(DataError) as err:
        load_dataset(str(pickled))
    _assert_one_line(err, "pickled.npz")

    no_actions = tmp_path / "no_actions.hdf5"
    with h5py.File(no_actions, "w") as f:
        f["observations"] = ds.observations
    with pytest.raises(DataError) as err:
        load_dataset(str(no_actions))
    _assert_one_line(err, "no_actions.hdf5", "actions")

    with pytest.raises(DataError) as err:
        load_dataset(str(tmp_path / "missing.hdf5"))
    _assert_one_line(
        err, "no such dataset file, built-in dataset id or local Minari dataset", "missing.hdf5"
    )
    with pytest.raises(DataError) as err:
        load_dataset("not-a-local-dataset-v0")
    _assert_one_line(err, "no such dataset file, built-in dataset id or local Minari dataset")

    csv = tmp_path / "data.csv"
    csv.write_text("1,2,3\n")
    with pytest.raises(DataError) as err:
        load_dataset(str(csv))
    _assert_one_line(err, ".csv", ".npz", ".hdf5", "Minari")
    with pytest.raises(DataError) as err:
        load_dataset(str(tmp_path))  # a directory that is not a Minari dataset
    _assert_one_line(err, "not a Minari dataset")
    with pytest.raises(DataError) as err:
        save_dataset(ds, tmp_path / "out.csv")
    _assert_one_line(err, ".csv")
