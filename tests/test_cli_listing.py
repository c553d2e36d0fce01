"""Listings a person reads at 80 columns: filters and layouts of `envs`, `data list`, `zoo list`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from shiftrl.cli import app

runner = CliRunner()


def test_envs_filters_by_robot_and_shift_and_fits_80_columns():
    r = runner.invoke(app, ["envs", "hopper", "--shift", "mass"], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert "3 dynamics variants" in lines[0] and max(len(line) for line in lines) <= 80
    names = {line.split("│")[1].strip() for line in lines if line.startswith("│")}
    assert names == {"hopper-mass-0.5", "hopper-mass-2.0", "hopper-mass-torso-2.0"}
    r = runner.invoke(app, ["envs", "hoper"])
    assert r.exit_code == 2 and r.output.startswith("shiftrl: error: unknown robot 'hoper'")
    r = runner.invoke(app, ["envs", "--shift", "colour"])
    assert r.exit_code == 2 and "kinds: base, damping" in r.output


def test_data_list_and_zoo_list_filter_and_keep_names_whole(tmp_path):
    env = {"COLUMNS": "80", "SHIFTRL_DATA": str(tmp_path)}
    r = runner.invoke(app, ["data", "list", "mass-2.0", "--robot", "hopper", "--json"], env=env)
    ids = [row["id"] for row in json.loads(r.stdout)]
    assert ids and all(i.startswith("hopper-mass-2.0/") for i in ids)
    r = runner.invoke(app, ["data", "list", "--made", "--json"], env=env)
    assert json.loads(r.stdout) == []  # nothing made in an empty cache
    r = runner.invoke(app, ["zoo", "list"], env=env)
    assert r.exit_code == 0 and "halfcheetah-friction-0.5 │" in r.output
    assert max(len(line) for line in r.output.splitlines()) <= 80


def test_version_short_help_add_ons_and_did_you_mean():
    from importlib.metadata import version

    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"shiftrl {version('shiftrl')}"
    r = runner.invoke(app, ["train", "-h"])
    assert r.exit_code == 0 and "--algo" in r.output
    r = runner.invoke(app, ["algos"], env={"COLUMNS": "120"})
    assert r.exit_code == 0 and "shift add-ons" in r.output
    assert all(f"│ {name}" in r.output for name in ("dara", "srpo", "spot", "ssar"))
    r = runner.invoke(app, ["train", "--algo", "td3bx", "--dataset", "pointreach/mixed-v0"])
    assert r.exit_code == 2 and "did you mean 'td3bc'?" in r.output and "ssar-cql" in r.output


def test_default_run_folders_name_add_ons_subsets_and_sources():
    from shiftrl.data.registry import get_dataset
    from shiftrl.training.config import make_config
    from shiftrl.training.run import default_run_dir

    ds = get_dataset("pointreach/mixed-v0", progress=False)
    plain = default_run_dir(make_config("iql", dataset="pointreach/mixed-v0"), ds)
    dara = make_config(
        "iql",
        addons=["dara"],
        dataset="pointreach/mixed-v0",
        sources=("data/source.npz",),
        target_fraction=0.1,
    )
    assert plain.name == "iql-pointreach_mixed-v0-s0"
    assert default_run_dir(dara, ds).name == "iql+dara-pointreach_mixed-v0-0.1T-from-source-s0"


def test_missing_logger_is_refused_before_training_and_env_ids_get_suggestions(tmp_path):
    import importlib.util

    import pytest

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    out = tmp_path / "run"
    argv = ["train", "--algo", "bc", "--dataset", "pointreach/mixed-v0", "--out", str(out)]
    r = runner.invoke(app, [*argv, "--set", "wandb_project=x"])
    assert r.exit_code == 2 and "pip install shiftrl[wandb]" in r.output and not out.exists()
    r = runner.invoke(app, [*argv, "--eval-env", "Hoper-v5"])
    assert r.exit_code == 2 and "did you mean Hopper-v5" in r.output
