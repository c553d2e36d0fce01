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
