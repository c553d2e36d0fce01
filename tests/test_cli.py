"""The command line: a user mistake gives one clear line, a non-zero exit code, and no
half-written run folder; the happy path trains, evaluates and resumes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from shiftrl.cli import app
from shiftrl.data.io import save_dataset
from shiftrl.envs.toy import POINT_REACH_ID

runner = CliRunner()
TINY = ["--set", "actor_hidden=32,32", "--set", "critic_hidden=32,32", "--set", "batch_size=64"]


@pytest.fixture(scope="module")
def files(point_reach_data, tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    save_dataset(point_reach_data, d / "good.npz")
    save_dataset(point_reach_data, d / "good.hdf5")
    arrays = point_reach_data.arrays()
    bad = dict(arrays, rewards=arrays["rewards"].copy())
    bad["rewards"][3] = np.nan
    np.savez(d / "nan.npz", **bad)
    wide = dict(arrays)
    wide["observations"] = np.repeat(arrays["observations"], 2, axis=1)
    wide["next_observations"] = np.repeat(arrays["next_observations"], 2, axis=1)
    np.savez(d / "wide.npz", **wide)
    (d / "corrupt.hdf5").write_bytes(b"\x89HDF-not-really" * 50)
    return d


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


BAD_INPUTS = {
    "unknown algorithm": (["--algo", "nope"], "unknown algorithm 'nope'"),
    "missing file": (["--dataset", "{d}/missing.npz"], "no such dataset file"),
    "bad --set key": (["--set", "bogus=1"], "unknown setting 'bogus'"),
    "bad --set value": (["--set", "alpha=abc"], "--set alpha=abc: expected a float"),
    "shape mismatch": (["--source", "{d}/wide.npz"], "obs dim 2"),
    "NaN in data": (["--dataset", "{d}/nan.npz"], "'rewards' contains 1 NaN"),
    "corrupt file": (["--dataset", "{d}/corrupt.hdf5"], "corrupt.hdf5"),
    "unknown eval env": (["--eval-env", "NoSuchEnv-v0"], "unknown evaluation environment"),
    "eval env shape": (["--eval-env", "Pendulum-v1"], "evaluation env Pendulum-v1 has obs dim 3"),
    "--seed and --seeds": (["--seed", "0", "--seeds", "0,1"], "pass --seed or --seeds"),
    "bad --seeds": (["--seeds", "0-x"], "--seeds '0-x': expected e.g. 0,1,2"),
    "--seeds with a subset": (
        ["--seeds", "0,1", "--target-fraction", "0.5"],
        "each seed draws its own target subset",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gives_one_line(case, files, tmp_path):
    extra, expected = BAD_INPUTS[case]
    base = {"--algo": "td3bc", "--dataset": str(files / "good.npz")}
    args = []
    extra = [e.format(d=files) for e in extra]
    for flag, value in base.items():
        if flag not in extra:
            args += [flag, value]
    out = tmp_path / "run"
    result = run("train", *args, *extra, "--steps", 100, "--out", out, "--no-progress")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("shiftrl: error:"), result.output
    assert expected in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()


def test_train_eval_resume_cli(files, tmp_path):
    out = tmp_path / "run"
    common = ["--steps", 200, "--eval-env", POINT_REACH_ID, "--out", out, "--no-progress", *TINY]
    result = run(
        "train",
        "--algo",
        "td3bc",
        "--dataset",
        files / "good.hdf5",
        "--set",
        "eval_every=100",
        *common,
    )
    assert result.exit_code == 0, result.output
    assert "final score" in result.output
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [100, 200]

    result = run("eval", out, "--episodes", 3, "--json")
    assert result.exit_code == 0, result.output
    res = json.loads(result.output.strip().splitlines()[-1])
    assert res[0]["env"] == POINT_REACH_ID and len(res[0]["returns"]) == 3

    # --resume of a finished run is a no-op that keeps its rows
    result = run("train", "--resume", "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    # a fresh run into an existing folder is refused
    result = run("train", "--algo", "td3bc", "--dataset", files / "good.npz", *common)
    assert result.exit_code == 2 and "already exists" in result.output


def test_train_seeds_cli(files, tmp_path):
    """--seeds trains the seeds as one vmapped program, one run folder each."""
    out = tmp_path / "group"
    args = ["--algo", "bc", "--dataset", files / "good.npz", "--steps", 100, "--out", out]
    tiny = ["--set", "actor_hidden=32,32", "--set", "batch_size=64"]
    result = run("train", *args, "--seeds", "0,2", "--no-progress", *tiny)
    assert result.exit_code == 0, result.output
    assert result.output.count("final score") == 2
    for seed in (0, 2):
        meta = json.loads((out / f"seed{seed}" / "config.json").read_text())
        assert meta["config"]["seed"] == seed
    result = run("train", "--resume", "--out", out, "--seeds", "0,2", "--no-progress")
    assert result.exit_code == 0 and result.output.count("final score") == 2, result.output


def test_eval_and_resume_errors(tmp_path):
    result = run("eval", tmp_path / "nowhere")
    assert result.exit_code == 2 and "not a shiftrl run folder" in result.output
    result = run("train", "--resume", "--out", tmp_path / "nowhere")
    assert result.exit_code == 2 and "--resume needs --out" in result.output


def test_algos_and_envs_list():
    result = run("algos")
    assert result.exit_code == 0
    for name in ("bc", "td3bc", "iql", "cql"):
        assert name in result.output
    result = run("envs")
    assert result.exit_code == 0 and "hopper-gravity-0.5" in result.output
