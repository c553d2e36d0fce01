"""Built-in datasets from the behaviour-policy zoo: every level builds, builds are
deterministic, medium-replay follows the snapshot windows, datasets are made on first use
and cached as Minari datasets, recorded checksums are enforced, and the CLI works.

The zoo here is a temporary one (SHIFTRL_ZOO_DIR): a `hopper-base` entry with random-init
tanh-Gaussian actors (11-dim observations) and replay snapshots whose actions are nearly
constant, so the windows of medium-replay can be told apart in the data.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from flax import serialization
from typer.testing import CliRunner

import shiftrl
from shiftrl.cli import app
from shiftrl.core.errors import ConfigError, DataError
from shiftrl.data import records, registry, zoo_datasets
from shiftrl.data.compose import compose, subset_episodes
from shiftrl.data.dataset import TransitionDataset
from shiftrl.data.zoo_datasets import NumpyBehaviour
from shiftrl.nets import TanhGaussianActor

HIDDEN = (32, 32)
RANDOM_RETURN, EXPERT_RETURN = -20.0, 500.0
START, EVERY, MEDIUM_STEPS = 100, 100, 400
REPLAY_MEANS = {100: 0.6, 200: -0.6, 300: 0.9}  # tanh(mean) of each replay snapshot's action
SMALL = 300
runner = CliRunner()


def actor_bytes(seed: int, constant: float | None = None) -> bytes:
    net = TanhGaussianActor(3, HIDDEN)
    params = net.init(
        jax.random.PRNGKey(seed), np.zeros((1, 11), np.float32), jax.random.PRNGKey(0)
    )
    params = jax.tree.map(np.asarray, params["params"])
    if constant is not None:  # a near-deterministic constant action tanh(constant)
        last = params["net"]["Dense_2"]
        last["kernel"] = np.zeros_like(last["kernel"])
        last["bias"] = np.array([constant] * 3 + [0.0] * 3, np.float32)
        params["log_std_offset"] = np.float32(-12.0)
    return serialization.to_bytes(params)


@pytest.fixture
def fake_zoo(tmp_path, monkeypatch):
    """A temporary zoo with hopper-base, small default sizes and a private data cache."""
    zoo_dir = tmp_path / "zoo"
    (zoo_dir / "hopper-base").mkdir(parents=True)
    snaps = []

    def ship(name: str, data: bytes, steps: int, ret: float | None = None) -> None:
        (zoo_dir / "hopper-base" / f"{name}.msgpack").write_bytes(data)
        rec = {"name": name, "file": f"hopper-base/{name}.msgpack", "train_steps": steps}
        if ret is not None:
            rec["return_mean"] = ret
        snaps.append(rec)

    ship("expert", actor_bytes(1), 900, EXPERT_RETURN)
    ship("medium", actor_bytes(2), MEDIUM_STEPS, 150.0)
    for steps, c in REPLAY_MEANS.items():
        ship(f"replay-{steps:010d}", actor_bytes(3, np.arctanh(c)), steps)
    ship(f"replay-{MEDIUM_STEPS:010d}", actor_bytes(2), MEDIUM_STEPS)
    entry = {
        "env_id": "shiftrl/hopper-base-v0",
        "obs_dim": 11,
        "act_dim": 3,
        "hidden": list(HIDDEN),
        "action_low": [-1.0] * 3,
        "action_high": [1.0] * 3,
        "random_return": RANDOM_RETURN,
        "start_steps": START,
        "snapshot_every": EVERY,
        "snapshots": snaps,
    }
    shifted = dict(entry, env_id="shiftrl/hopper-mass-2.0-v0")  # same files, for the id mapping
    (zoo_dir / "manifest.json").write_text(
        json.dumps({"format": 1, "policies": {"hopper-base": entry, "hopper-mass-2.0": shifted}})
    )
    monkeypatch.setenv("SHIFTRL_ZOO_DIR", str(zoo_dir))
    monkeypatch.setenv("SHIFTRL_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(zoo_datasets, "DEFAULT_SIZE", SMALL)
    monkeypatch.setattr(records, "CHECKSUMS_FILE", tmp_path / "checksums.json")
    zoo_datasets._synced = None  # register this zoo's datasets on next use
    yield zoo_dir
    zoo_datasets._synced = None  # and the real zoo's again afterwards (not monkeypatch: its
    # undo would restore the real zoo's sync key while the registry holds this zoo)


def test_concurrent_first_uses_build_once(fake_zoo, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    calls = []
    make = registry.make_dataset
    monkeypatch.setattr(registry, "make_dataset", lambda *a, **k: calls.append(a) or make(*a, **k))
    with ThreadPoolExecutor(2) as pool:
        got = list(
            pool.map(
                lambda _: registry.get_dataset("hopper/random-v0", 150, progress=False), [0, 1]
            )
        )
    assert len(calls) == 1 and got[0].checksum() == got[1].checksum()


def test_a_resync_never_hides_a_dataset_from_another_thread(fake_zoo):
    # a sweep's workers look datasets up while another re-reads a changed manifest
    import threading

    registry.dataset_ids()
    stop, missed = threading.Event(), []

    def resync() -> None:
        for _ in range(200):
            zoo_datasets._synced = None
            zoo_datasets.sync()
        stop.set()

    worker = threading.Thread(target=resync)
    worker.start()
    while not stop.is_set():
        if not registry.is_registered("hopper/random-v0"):
            missed.append(1)
    worker.join()
    assert not missed


@pytest.mark.parametrize("level", zoo_datasets.LEVELS)
def test_every_level_builds(fake_zoo, level):
    did = f"hopper-base/{level}-v0"
    assert registry.is_registered(did) and registry.is_registered(f"hopper/{level}-v0")
    spec = registry.spec_of(did)
    size = spec.default_size
    assert size == {"medium-replay": MEDIUM_STEPS, "medium-expert": 2 * SMALL}.get(level, SMALL)
    ds = registry.make_dataset(did, seed=0)
    assert len(ds) == size and ds.obs_dim == 11 and ds.act_dim == 3
    assert ds.metadata.name == did and ds.metadata.env_id == "shiftrl/hopper-base-v0"
    assert (ds.metadata.ref_min_score, ds.metadata.ref_max_score) == (RANDOM_RETURN, EXPERT_RETURN)
    assert ds.metadata.dynamics == "base"
    prov = ds.metadata.provenance
    assert prov["level"] == level and prov["size"] == size and prov["sha256"] == ds.checksum()
    # episodes are contiguous: next_obs[i] == obs[i + 1] inside every episode
    ends = ds.terminals | ds.timeouts
    assert ends[-1] and not (ds.terminals & ds.timeouts).any()
    inside = ~ends[:-1]
    assert np.array_equal(ds.next_observations[:-1][inside], ds.observations[1:][inside])
    assert np.all(np.abs(ds.actions) <= 1.0)


def test_builds_are_deterministic(fake_zoo):
    for did in ("hopper/medium-v0", "hopper/random-v0"):
        a = registry.make_dataset(did, 250, seed=3)
        b = registry.make_dataset(did, 250, seed=3)
        c = registry.make_dataset(did, 250, seed=4)
        assert a.checksum() == b.checksum()
        assert a.checksum() != c.checksum()


def test_numpy_policy_matches_the_zoo_actor(fake_zoo):
    from shiftrl import zoo

    obs = np.random.default_rng(0).normal(size=(16, 11))
    jax_actor = zoo.load_behaviour("hopper-base", "medium", deterministic=True)
    np_actor = NumpyBehaviour.from_zoo("hopper-base", "medium", deterministic=True)
    np.testing.assert_allclose(np_actor(obs, None), jax_actor(obs, None), atol=1e-5)
    sampled = NumpyBehaviour.from_zoo("hopper-base", "medium")(obs, np.random.default_rng(1))
    assert sampled.shape == (16, 3) and not np.allclose(sampled, np_actor(obs, None))


def test_medium_replay_follows_the_snapshot_windows(fake_zoo):
    windows = zoo_datasets.replay_windows(
        json.loads((fake_zoo / "manifest.json").read_text())["policies"]["hopper-base"]
    )
    assert windows == [
        ("uniform-random", 0, 100),
        ("replay-0000000100", 100, 200),
        ("replay-0000000200", 200, 300),
        ("replay-0000000300", 300, 400),
    ]
    for size, per_window in ((None, 100), (200, 50)):
        ds = registry.make_dataset("hopper/medium-replay-v0", size)
        got = [w["transitions"] for w in ds.metadata.provenance["windows"]]
        assert got == [per_window] * 4
        parts = ds.actions.reshape(4, per_window, 3)
        assert parts[0].std() > 0.3  # uniform random actions
        for k, c in enumerate(REPLAY_MEANS.values(), start=1):
            np.testing.assert_allclose(parts[k], c, atol=1e-3)  # that snapshot's action


def test_medium_expert_is_medium_then_expert(fake_zoo):
    me = registry.make_dataset("hopper/medium-expert-v0", 2 * 150 + 1, seed=2)
    med = registry.make_dataset("hopper/medium-v0", 151, seed=2)
    exp = registry.make_dataset("hopper/expert-v0", 150, seed=2)
    assert me.take(np.arange(151)).checksum() == med.checksum()
    assert me.take(np.arange(151, 301)).checksum() == exp.checksum()
    assert [p["dataset_id"] for p in me.metadata.provenance["parts"]] == [
        "hopper-base/medium-v0",
        "hopper-base/expert-v0",
    ]


def test_made_on_first_use_then_cached_as_minari(fake_zoo, tmp_path):
    ds = shiftrl.load_dataset("hopper/medium-v0")
    path = tmp_path / "data" / "shiftrl" / "hopper-base" / "medium-v0"
    assert (path / "data" / "metadata.json").is_file() and (path / registry.FLAT_FILE).is_file()
    again = shiftrl.load_dataset("hopper-base/medium-v0")
    assert again.checksum() == ds.checksum() and again.metadata.provenance["seed"] == 0
    from shiftrl.data.io import load_minari

    from_minari = load_minari("shiftrl/hopper-base/medium-v0", root=tmp_path / "data")
    assert from_minari.checksum() == ds.checksum()
    assert registry.minari_id("hopper/medium-v0", 500, 1) == "shiftrl/hopper-base/medium-n500-s1-v0"
    assert registry.minari_id("hopper-mass-2.0/medium-v0") == "shiftrl/hopper-mass-2_0/medium-v0"
    # new weights for the same ID: the cached copy is stale and is made again
    (fake_zoo / "hopper-base" / "medium.msgpack").write_bytes(actor_bytes(7))
    remade = registry.get_dataset("hopper/medium-v0", progress=False)
    assert remade.checksum() != ds.checksum()


def test_recorded_checksum_is_enforced(fake_zoo):
    ds = registry.make_dataset("hopper/expert-v0", 200, seed=1)
    rec = records.record_build(ds)
    assert rec["sha256"] == ds.checksum() and rec["normalized_score"] is not None
    registry.make_dataset("hopper/expert-v0", 200, seed=1)  # reproduces the record
    data = json.loads(records.CHECKSUMS_FILE.read_text())
    data["datasets"]["hopper-base/expert-v0"][0]["sha256"] = "0" * 64
    records.CHECKSUMS_FILE.write_text(json.dumps(data))
    with pytest.raises(DataError, match="does not reproduce the recorded build"):
        registry.make_dataset("hopper/expert-v0", 200, seed=1)
    registry.make_dataset("hopper/expert-v0", 200, seed=1, verify=False)
    data["datasets"]["hopper-base/expert-v0"][0]["inputs_sha256"] = "other weights"
    records.CHECKSUMS_FILE.write_text(json.dumps(data))
    registry.make_dataset("hopper/expert-v0", 200, seed=1)  # record is for other weights


def test_reference_scores_come_from_the_zoo(fake_zoo, monkeypatch):
    from shiftrl.envs.reference import D4RL_REFERENCE, reference_scores

    assert reference_scores("shiftrl/hopper-base-v0") == (RANDOM_RETURN, EXPERT_RETURN)
    assert reference_scores("Hopper-v5") == D4RL_REFERENCE["Hopper-v5"]
    # not in this zoo: its own measured random return, the base dynamics' expert
    from shiftrl.envs.reference import random_returns, reference_source

    own_random = random_returns()["hopper-gravity-0.5"]["random_return"]
    assert reference_scores("shiftrl/hopper-gravity-0.5-v0") == (own_random, EXPERT_RETURN)
    assert "expert of hopper-base" in reference_source("shiftrl/hopper-gravity-0.5-v0")
    monkeypatch.setenv("SHIFTRL_ZOO_DIR", str(fake_zoo / "empty"))
    assert reference_scores("shiftrl/hopper-base-v0") == D4RL_REFERENCE["Hopper-v5"]


def test_cli_data_list_make_info(fake_zoo):
    r = runner.invoke(app, ["data", "list", "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["id"]: row for row in json.loads(r.stdout)}
    assert rows["hopper-base/medium-v0"]["status"] == "can be made"
    assert rows["hopper-base/medium-v0"]["aliases"] == ["hopper/medium-v0"]
    assert "pointreach/mixed-v0" in rows
    r = runner.invoke(app, ["data", "make", "hopper/random-v0", "--size", "200", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "made hopper-base/random-v0" in r.stdout and "200 transitions" in r.stdout
    r = runner.invoke(app, ["data", "info", "hopper/random-v0", "--size", "200", "--json"])
    info = json.loads(r.stdout)
    assert info["status"] == "made" and info["transitions"] == 200
    assert info["reference_scores"] == {"random": RANDOM_RETURN, "expert": EXPERT_RETURN}
    assert info["reference_source"].startswith("zoo")
    assert info["d4rl_reference_scores"] == {"random": -20.272305, "expert": 3234.3}
    assert len(info["sha256"]) == 64 and info["normalized_score"] is not None
    assert info["provenance"]["behaviour"] == "uniform-random"
    r = runner.invoke(app, ["data", "info", "hopper/expert-v0"])
    assert r.exit_code == 0 and "not made yet" in r.stdout and "behaviour_normalized" in r.stdout
    r = runner.invoke(app, ["data", "list"])
    assert r.exit_code == 0 and "made" in r.stdout


@pytest.mark.parametrize(
    "args, expected",
    [
        (["data", "make", "hopper/medum-v0"], "did you mean hopper/medium-v0"),
        (["data", "info", "walker2d-mass-2.0/medium-v0"], "no policies for 'walker2d-mass-2.0'"),
        (["data", "make", "hopper/medium-v0", "--size", "-5"], "size must be positive"),
        (["data", "make", "hopper/medium-v0", "--size", "0"], "size must be positive, got 0"),
    ],
)
def test_cli_data_errors_are_one_line(fake_zoo, args, expected):
    r = runner.invoke(app, args)
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("shiftrl: error:") and expected in lines[0]


def test_unknown_id_through_load_dataset(fake_zoo):
    with pytest.raises(DataError, match="did you mean hopper-base/expert-v0"):
        shiftrl.load_dataset("hopper-base/expret-v0")


# ---- composition ---------------------------------------------------------------------------
def episodes_dataset(lengths: list[int]) -> TransitionDataset:
    n = sum(lengths)
    obs = np.arange(n, dtype=np.float32)[:, None]
    timeouts = np.zeros(n, bool)
    timeouts[np.cumsum(lengths) - 1] = True
    return TransitionDataset.from_arrays(
        obs, np.zeros((n, 1)), np.ones(n), obs + 0.5, np.zeros(n, bool), timeouts
    )


def whole_episodes(sub: TransitionDataset, full: TransitionDataset) -> bool:
    starts = set(full.observations[full.episode_starts, 0].tolist())
    ends = set(full.observations[full.episode_ends, 0].tolist())
    return (
        set(sub.observations[sub.episode_starts, 0].tolist()) <= starts
        and set(sub.observations[sub.episode_ends, 0].tolist()) <= ends
    )


def test_subsets_are_whole_seeded_episodes():
    rng = np.random.default_rng(0)
    full = episodes_dataset(rng.integers(5, 60, 80).tolist())
    a = subset_episodes(full, fraction=0.1, seed=1)
    assert len(a) >= 0.1 * len(full) and whole_episodes(a, full)
    order = np.random.default_rng(1).permutation(full.num_episodes)  # the seeded order
    last = full.episode_lengths()[order[a.num_episodes - 1]]
    assert len(a) - last < 0.1 * len(full)  # no more episodes than needed
    assert subset_episodes(full, fraction=0.1, seed=1).checksum() == a.checksum()
    assert subset_episodes(full, fraction=0.1, seed=2).checksum() != a.checksum()
    b = subset_episodes(full, transitions=500, seed=0)
    assert len(b) >= 500 and whole_episodes(b, full) and b.metadata.name.endswith("[500tr]")
    c = subset_episodes(full, count=7, seed=0)
    assert c.num_episodes == 7 and whole_episodes(c, full)
    with pytest.raises(ConfigError, match="exactly one"):
        subset_episodes(full, fraction=0.1, transitions=5)
    with pytest.raises(ConfigError, match="only"):
        subset_episodes(full, transitions=len(full) + 1)


def test_compose_target_subset_and_sources(fake_zoo):
    target, sources = compose("pointreach/mixed-v0", ["pointreach/mixed-v0"], target_count=100)
    assert 100 <= len(target) < 100 + 10 and len(sources) == 1 and len(sources[0]) == 4000
    again, _ = compose("pointreach/mixed-v0", target_count=100)
    assert again.checksum() == target.checksum()
    frac, _ = compose("pointreach/mixed-v0", target_fraction=0.1, seed=3)
    assert 400 <= len(frac) < 410
    with pytest.raises(ConfigError, match="obs dim"):
        compose("pointreach/mixed-v0", ["hopper/random-v0"])


def test_dataset_docs_are_current(monkeypatch):
    from pathlib import Path

    from shiftrl.data.docs import render

    monkeypatch.delenv("SHIFTRL_ZOO_DIR", raising=False)
    page = Path(__file__).resolve().parents[1] / "docs" / "datasets.md"
    assert page.read_text() == render(), (
        "docs/datasets.md is stale: run `python -m shiftrl.data.docs > docs/datasets.md`"
    )


# -- the shipped zoo (no fake): a fresh machine makes a recorded build and trains on it ------
SHIPPED = "pendulum-mass-2.0/medium-replay-v0"  # the smallest recorded default build: 6,000


def test_shipped_weights_match_their_record_and_train_on_first_use(tmp_path, monkeypatch):
    """`shiftrl train --dataset ID` on a machine that has never seen the data: the dataset is
    made from the package's own weights and checked against checksums.json (bytes where a
    record was made on this platform with these versions, statistics elsewhere: either way it
    trains), and Minari recovers the shifted environment it came from."""
    import minari

    monkeypatch.setenv("SHIFTRL_DATA", str(tmp_path / "data"))
    out = tmp_path / "run"
    argv = ["train", "--algo", "td3bc", "--dataset", SHIPPED, "--steps", "20", "--out", str(out)]
    r = runner.invoke(app, [*argv, "--set", "eval_episodes=1", "--no-progress"])
    assert r.exit_code == 0, r.output
    ds = registry.get_dataset(SHIPPED, progress=False)
    assert json.loads((out / "config.json").read_text())["checksums"] == [ds.checksum()]
    assert len(ds) == 6000
    outcome = ds.metadata.provenance["verification"]["result"]
    inputs = registry.spec_of(SHIPPED).inputs()
    if records.is_recorded_here(SHIPPED, 6000, 0, inputs):
        assert outcome == "identical to a recorded build"
    else:
        assert outcome in (
            "identical to a recorded build",
            "statistics agree with the recorded build (bytes differ)",
        )
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "data"))
    env = minari.load_dataset(registry.minari_id(SHIPPED)).recover_environment()
    assert env.spec.id == "shiftrl/pendulum-mass-2.0-v0"
    assert env.unwrapped.shiftrl_variant == "pendulum-mass-2.0"


def test_every_variant_has_a_measured_random_return_that_reproduces():
    from shiftrl.envs import VARIANTS
    from shiftrl.envs.measure import random_return
    from shiftrl.envs.reference import random_returns, reference_scores

    table = random_returns()
    assert set(table) == set(VARIANTS) and {r["episodes"] for r in table.values()} == {50}
    # the same seeds give the same returns (hopper: short random episodes, a second)
    again = random_return("shiftrl/hopper-gravity-2.0-v0", episodes=50)
    assert round(float(again.mean()), 3) == table["hopper-gravity-2.0"]["random_return"]
    assert all(reference_scores(v.gym_id) is not None for v in VARIANTS.values())
    # the zoo's own random returns (measured at export, same seeds) agree with the table
    for variant, entry in manifest_policies().items():
        assert table[variant]["random_return"] == round(entry["random_return"], 3), variant


def manifest_policies() -> dict:
    from shiftrl import zoo

    return zoo.manifest()["policies"]
