"""A run records exactly the data it trained on, so resume and fine-tuning load that again or
say clearly why they cannot (built-in builds by size-qualified ID, files by absolute path,
in-memory objects by name)."""

from __future__ import annotations

import json

import pytest

import shiftrl
from shiftrl.api import _run_config
from shiftrl.core.errors import DataError
from shiftrl.data.io import IN_MEMORY, data_reference, save_npz
from shiftrl.envs.toy import POINT_REACH_ID
from tests.conftest import FAST_RUN, tiny_overrides


def reference_of(dataset) -> str:
    config, _, _ = _run_config("bc", dataset, (), 10, 0, (), None, (), {}, {})
    return config.dataset


def test_what_a_run_records_as_its_data(tmp_path, monkeypatch, point_reach_data):
    monkeypatch.setenv("SHIFTRL_DATA", str(tmp_path / "data"))
    built = shiftrl.load_dataset("pointreach/mixed-n1000-s1-v0")
    assert data_reference(built) == "pointreach/mixed-n1000-s1-v0"
    assert reference_of(built) == reference_of("pointreach/mixed-n1000-s1-v0")
    assert reference_of(shiftrl.load_dataset("pointreach/mixed-v0")) == "pointreach/mixed-v0"
    save_npz(point_reach_data, tmp_path / "mine.npz")
    from_file = shiftrl.load_dataset(str(tmp_path / "mine.npz"))
    assert reference_of(from_file) == str((tmp_path / "mine.npz").resolve())
    assert reference_of(point_reach_data) == f"{IN_MEMORY}point-reach/mixed"


def test_finetune_of_a_run_on_in_memory_data_says_why_it_cannot_prefill(tmp_path, point_reach_data):
    run = shiftrl.train(
        "bc",
        point_reach_data,
        steps=20,
        eval_envs=[POINT_REACH_ID],
        out=tmp_path / "run",
        overrides=tiny_overrides("bc", eval_every=20, **dict(FAST_RUN, eval_episodes=2)),
        progress=False,
    )
    meta = json.loads((run.dir / "config.json").read_text())
    assert meta["config"]["dataset"] == f"{IN_MEMORY}point-reach/mixed"
    with pytest.raises(DataError, match=r"in-memory dataset \('point-reach/mixed'\).*--no-prefill"):
        shiftrl.finetune(run.dir, online_steps=1000, eval_episodes=2, progress=False)


def test_data_naming_no_environment_warns_once_and_writes_no_empty_curve(
    tmp_path, point_reach_data, capsys
):
    import dataclasses

    ds = point_reach_data.take(range(len(point_reach_data)))
    ds.metadata = dataclasses.replace(ds.metadata, env_id=None)
    run = shiftrl.train(
        "bc",
        ds,
        steps=20,
        out=tmp_path / "run",
        overrides=tiny_overrides("bc", eval_every=20, **FAST_RUN),
        progress=False,
    )
    err = capsys.readouterr().err
    assert err.count("training without evaluation") == 1 and "--eval-env" in err
    assert not (run.dir / "learning_curve.png").exists() and run.rows[-1]["step"] == 20
