"""A user's work is never lost or corrupted: run folders are owned (foreign files are never
deleted) and locked, divergence stops a run with one line and keeps the last finite
checkpoint, a kill during a metrics append or a damaged newest checkpoint still resumes,
and bad input is one `shiftrl: error:` line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import shiftrl
from shiftrl.cli import app
from shiftrl.core.errors import ConfigError, ShiftRLError
from shiftrl.data.io import save_dataset
from shiftrl.envs.toy import POINT_REACH_ID
from shiftrl.training import checkpoint, rundir
from shiftrl.training.logger import RunLogger, read_rows
from tests.bench_helpers import fake_study
from tests.conftest import FAST_RUN, Interrupt, stop_at, tiny_overrides

runner = CliRunner()
RUN = dict(FAST_RUN, eval_episodes=4, eval_every=100)


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("shiftrl: error:"), result.output
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def train(data, out, algo="bc", steps=200, **kw):
    extra = kw.pop("overrides", {})
    return shiftrl.train(
        algo,
        data,
        steps=steps,
        eval_envs=[POINT_REACH_ID],
        out=out,
        overrides=tiny_overrides(algo, **RUN, **extra),
        progress=False,
        **kw,
    )


# -- 1. ownership ---------------------------------------------------------------------------
def test_resume_refuses_a_folder_shiftrl_did_not_write(point_reach_data, tmp_path):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "config.json").write_text('{"name": "my project"}')
    (project / "src" / "main.py").write_text("print('mine')")
    (project / "notes.txt").write_text("notes")
    before = snapshot(project)

    with pytest.raises(ConfigError, match="not a shiftrl run folder"):
        train(point_reach_data, project, resume=True)  # the Python API
    line = one_error_line(cli("train", "--resume", "--out", project, "--no-progress"))
    assert "config.json" in line and "not a complete shiftrl run config" in line
    with pytest.raises(ConfigError, match="already exists"):
        train(point_reach_data, project)
    assert snapshot(project) == before and not (project / rundir.MARKER).exists()

    # an --out that is a file, or lies under one: one line, nothing written
    line = one_error_line(
        cli("train", "--algo", "bc", "--dataset", "x.npz", "--out", project / "notes.txt")
    )
    assert "is a file" in line
    with pytest.raises(ShiftRLError, match="lies under a file"):
        train(point_reach_data, project / "notes.txt" / "run")
    line = one_error_line(cli("bench", "smoke", "--out", project / "notes.txt", "--no-progress"))
    assert "study folder" in line and "is a file" in line

    # a run folder from before the marker, killed before its first checkpoint (only files a
    # run writes): --resume adopts it and restarts it from scratch
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "config.json").write_text('{"shiftrl_version": "0.1"}')
    (legacy / "metrics.jsonl").write_text('{"step": 100}\n')
    opened = rundir.open_run(legacy, resume=True, checksums=[])
    opened.lock.release()
    assert opened.pre is None and sorted(p.name for p in legacy.iterdir()) == [
        rundir.LOCK,
        rundir.MARKER,
    ]
    # the demo's re-run clears a run folder the same way, and refuses a foreign one
    (legacy / "config.json").write_text("{}")
    (legacy / "notes.txt").write_text("mine")
    rundir.clear_run(legacy)
    assert sorted(p.name for p in legacy.iterdir()) == [rundir.LOCK, rundir.MARKER, "notes.txt"]
    with pytest.raises(ConfigError, match="holds files shiftrl did not write"):
        rundir.clear_run(project)
    assert snapshot(project) == before


# -- 2. locks -------------------------------------------------------------------------------
HOLD = (
    "import sys, time; from shiftrl.training.rundir import FolderLock; "
    "FolderLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(120)"
)


def test_a_live_run_folder_is_locked_and_a_dead_holder_does_not_block(point_reach_data, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(
            ShiftRLError, match=f"in use by another shiftrl process \\(pid {holder.pid}\\)"
        ):
            train(point_reach_data, run_dir)
        with pytest.raises(ShiftRLError, match=f"pid {holder.pid}"):
            train(point_reach_data, run_dir, resume=True)
        # the command line says so before it loads (or builds) any data
        line = one_error_line(cli("train", "--algo", "bc", "--dataset", "x.npz", "--out", run_dir))
        assert f"in use by another shiftrl process (pid {holder.pid})" in line
    finally:
        holder.kill()  # SIGKILL: no cleanup, the lock file stays with the dead pid in it
        holder.wait()
    assert (run_dir / rundir.LOCK).read_text().strip() == str(holder.pid)
    run = train(point_reach_data, run_dir, steps=100)  # the stale lock does not block
    assert [r["step"] for r in run.rows] == [100]
    assert (run_dir / rundir.LOCK).read_text() == ""  # released


def test_a_live_study_folder_is_locked(tmp_path):
    curves = {f"pointreach-mixed.{a}/seed0": [(100, 1.0), (200, 2.0)] for a in ("bc", "td3bc")}
    study = fake_study(tmp_path / "smoke-quick", "smoke", "quick", (0,), curves)
    with rundir.FolderLock(study, "study folder"):
        line = one_error_line(
            cli("bench", "smoke", "--seeds", "0", "--out", study, "--no-progress")
        )
    assert f"study folder {study} is in use by another shiftrl process (pid {os.getpid()})" in line
    result = cli("bench", "smoke", "--seeds", "0", "--out", study, "--no-progress")
    assert result.exit_code == 0 and "2 skipped" in result.output, result.output


# -- 3. divergence --------------------------------------------------------------------------
def _strict_json(text: str):
    def refuse(name):
        raise ValueError(f"non-finite number {name} in JSON output")

    return json.loads(text, parse_constant=refuse)


def test_divergence_stops_the_run_and_keeps_the_last_finite_checkpoint(point_reach_data, tmp_path):
    run_dir, data = tmp_path / "run", tmp_path / "data.npz"
    save_dataset(point_reach_data, data)  # a file, so that `train --resume` reloads it
    with pytest.raises(Interrupt):
        train(
            str(data),
            run_dir,
            algo="td3bc",
            callbacks=[stop_at(100)],
            overrides={"keep_checkpoints": 1},
        )
    # the run goes on with a learning rate that blows the critic up
    meta = json.loads((run_dir / "config.json").read_text())
    meta["config"]["learner"]["critic_lr"] = 1e30
    (run_dir / "config.json").write_text(json.dumps(meta))

    line = one_error_line(cli("train", "--resume", "--out", run_dir, "--no-progress"), code=3)
    assert "training diverged at step 10" in line and "loss" in line
    assert "the last finite checkpoint (step_0000000100.msgpack) is kept" in line
    assert [p.name for p in checkpoint.list_checkpoints(run_dir)] == ["step_0000000100.msgpack"]
    last = read_rows(run_dir / "metrics.jsonl")[-1]
    assert last["diverged"] is True and last["step"] > 100 and last["diverged_reason"]

    result = cli("eval", run_dir, "--episodes", 2, "--json")  # the kept, finite policy
    assert result.exit_code == 0, result.output
    res = _strict_json(result.output.strip().splitlines()[-1])
    assert len(res[0]["returns"]) == 2

    # opt-out (research on divergence): trains on with a warning; the non-finite checkpoint
    # is marked and the last finite one survives rotation (keep_checkpoints=1)
    meta["config"]["divergence_guard"] = False
    (run_dir / "config.json").write_text(json.dumps(meta))
    result = cli("train", "--resume", "--out", run_dir, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "shiftrl: warning: training diverged at step" in result.output
    done = [x for x in result.output.splitlines() if x.startswith("done:")]
    assert len(done) == 1 and "final score n/a" in done[0] and "nan" not in done[0]
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == [
        "best.json",  # the best evaluation: step 100, the only one with a score
        "step_0000000100.msgpack",
        "step_0000000200.msgpack",
        "step_0000000200.nonfinite",
    ]
    assert read_rows(run_dir / "metrics.jsonl")[-1]["nonfinite"] is True
    line = one_error_line(cli("eval", run_dir, "--json"))
    assert "inf / NaN" in line
    assert shiftrl.load_policy(run_dir, step=100) is not None

    # the issue's own command: diverges before any checkpoint, one line, nothing left behind
    fresh = tmp_path / "fresh"
    tiny = ["--set", "actor_hidden=32,32", "--set", "critic_hidden=32,32"]
    result = cli(
        "train", "--algo", "td3bc", "--dataset", data, "--steps", 100, "--out", fresh,
        "--set", "critic_lr=1e6", "--set", "batch_size=64", *tiny, "--no-progress",
    )  # fmt: skip
    line = one_error_line(result, code=3)
    assert "training diverged at step" in line and "no checkpoint had been written yet" in line
    assert not fresh.exists()


# -- 4. crash-consistent logs and checkpoints -----------------------------------------------
def test_kill_during_a_metrics_append_and_a_damaged_checkpoint_still_resume(
    point_reach_data, tmp_path, monkeypatch, capsys
):
    run_dir = tmp_path / "run"
    log = RunLogger.log

    def killed_mid_append(self, row, **kwargs):
        if row["step"] == 200:  # half a line reaches the disk, then the process dies
            line = json.dumps(row)
            with self.jsonl.open("a") as f:
                f.write(line[: len(line) // 2])
            raise Interrupt
        return log(self, row, **kwargs)

    monkeypatch.setattr(RunLogger, "log", killed_mid_append)
    with pytest.raises(Interrupt):
        train(point_reach_data, run_dir)
    monkeypatch.setattr(RunLogger, "log", log)
    assert not (run_dir / "metrics.jsonl").read_text().endswith("\n")
    assert [r["step"] for r in read_rows(run_dir / "metrics.jsonl")] == [100]

    run = train(point_reach_data, run_dir, resume=True)
    assert [r["step"] for r in run.rows] == [100, 200]
    good = checkpoint.latest(run_dir).read_bytes()

    # a damaged newest checkpoint: resume falls back to the previous one, says so, and
    # retrains to the same bits
    checkpoint.latest(run_dir).write_bytes(b"\x00garbage" * 10)
    capsys.readouterr()
    run = train(point_reach_data, run_dir, resume=True)
    assert "step_0000000200.msgpack is unreadable" in capsys.readouterr().err
    assert checkpoint.latest(run_dir).read_bytes() == good
    assert (run_dir / "checkpoints" / "step_0000000200.msgpack.corrupt").exists()
    assert [r["step"] for r in run.rows] == [100, 200]

    # damage elsewhere than a torn last line is reported, not silently dropped
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ShiftRLError, match="line 2"):
        read_rows(bad)

    # -- 5. the run folder's other one-line errors ----------------------------------------
    line = one_error_line(cli("eval", run_dir, "--env", "Pendulum-v1"))
    assert "obs dim 3" in line
    for flag in ("--eval-every", "--eval-episodes", "--top"):
        line = one_error_line(cli("finetune", run_dir, flag, 0, "--online-steps", 1000))
        assert f"{flag} must be at least 1" in line
    line = one_error_line(cli("finetune", run_dir, "--warmup", -5, "--online-steps", 1000))
    assert "--warmup must be 0 or more" in line
    assert not list(tmp_path.glob("run-finetune*"))
    meta = json.loads((run_dir / "config.json").read_text())
    meta["config"]["learner"]["actor_hidden"] = [16]  # checkpoints of another network size
    (run_dir / "config.json").write_text(json.dumps(meta))
    assert "written by a network of another size" in one_error_line(cli("eval", run_dir))
    (run_dir / "config.json").write_text('{"config": {"algo": "bc"')  # torn config.json
    for args in (["eval", run_dir], ["finetune", run_dir], ["train", "--resume", "--out", run_dir]):
        assert "config.json: unreadable" in one_error_line(cli(*args))


# -- 5. range checks and parse errors -------------------------------------------------------
@pytest.mark.parametrize(
    "setting, expected",
    [
        ("critic_lr=-1", "a learning rate must be a finite number > 0"),
        ("actor_lr=nan", "a learning rate must be a finite number > 0"),
        ("discount=5", "the discount must be in (0, 1]"),
        ("policy_freq=0", "policy_freq=0: must be an integer >= 1"),
        ("actor_hidden=abc", "hidden sizes must be positive integers"),
        ("actor_hidden=0", "hidden sizes must be positive integers"),
        ("actor_hidden=-4", "hidden sizes must be positive integers"),
        ("actor_hidden=1.5", "hidden sizes must be positive integers"),
        ("seed=99999999999999999999", "seed must be an integer in [0, 2**32)"),
    ],
)
def test_hyperparameters_outside_their_meaning_are_one_line(setting, expected, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--algo", "td3bc", "--dataset", "x.npz", "--set", setting, "--out", out]
    assert expected in one_error_line(cli(*args))
    assert not out.exists()


def test_every_learner_preset_passes_the_range_checks():
    from shiftrl.learners import LEARNERS
    from shiftrl.training.config import validate_learner_config

    for cls in LEARNERS.values():
        for preset in (None, *cls.PRESETS):
            validate_learner_config(cls.preset(preset))


def test_typer_parse_errors_are_one_line(capsys):
    from shiftrl.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--steps", "abc"])
    assert exit_info.value.code == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and err[0].startswith("shiftrl: error:") and "--steps" in err[0]
    with pytest.raises(SystemExit) as exit_info:
        main([])  # bare `shiftrl`: its help, once
    assert exit_info.value.code == 2 and capsys.readouterr().out.count("Usage:") == 1


# -- 5. data, study and report mistakes -----------------------------------------------------
def test_data_mistakes_are_one_line_or_one_warning(point_reach_data, tmp_path, capsys):
    import dataclasses

    from shiftrl.core.errors import DataError
    from shiftrl.data.dataset import TransitionDataset
    from shiftrl.data.validate import validate
    from shiftrl.training.config import make_config
    from shiftrl.training.run import prepare

    meta = dataclasses.replace(point_reach_data.metadata, action_low="abc")
    with pytest.raises(DataError, match="metadata 'action_low' must be a list of numbers"):
        validate(dataclasses.replace(point_reach_data, metadata=meta), source="x.npz")
    meta = dataclasses.replace(point_reach_data.metadata, ref_min_score="low")
    with pytest.raises(DataError, match="'ref_min_score' must be a finite number"):
        validate(dataclasses.replace(point_reach_data, metadata=meta), source="x.npz")

    config = make_config("bc", steps=100, eval_envs=(POINT_REACH_ID,), **FAST_RUN)
    huge = dataclasses.replace(point_reach_data, observations=point_reach_data.observations * 1e30)
    with pytest.raises(DataError, match="too large to standardise"):
        from shiftrl.data.preprocess import fit_preprocessor

        fit_preprocessor([huge], config.learner)

    # a 1-row dataset and actions wider than the env's: a warning, not a refusal
    arrays = {k: a[:1] for k, a in point_reach_data.arrays().items()}
    wide_meta = dataclasses.replace(point_reach_data.metadata, action_low=[-5.0], action_high=[5.0])
    tiny = TransitionDataset(**arrays, metadata=wide_meta)
    capsys.readouterr()
    prepare(config, validate(tiny, source="tiny"), [])
    err = capsys.readouterr().err
    assert "has 1 transitions but every batch draws 64 rows" in err
    assert "actions span [-5, 5] in dim 0" in err and f"{POINT_REACH_ID} accepts [-1, 1]" in err


def test_damaged_caches_and_study_records(tmp_path, monkeypatch, capsys):
    from shiftrl.data import registry

    # a garbage cached metadata.json under SHIFTRL_DATA: one line, or rebuilt on use
    monkeypatch.setenv("SHIFTRL_DATA", str(tmp_path / "data"))
    meta_file = registry.cache_dir("pointreach/mixed-v0") / "data" / "metadata.json"
    meta_file.parent.mkdir(parents=True)
    meta_file.write_text("{garbage")
    (meta_file.parent.parent / registry.FLAT_FILE).write_bytes(b"")
    with pytest.raises(ShiftRLError, match="damaged cached dataset metadata"):
        registry.cached_metadata("pointreach/mixed-v0")

    # Minari's metadata.json without its required fields
    from shiftrl.data.minari_io import load_minari_data_dir

    meta_file.write_text("{}")
    with pytest.raises(ShiftRLError, match="lacks Minari's required metadata: dataset_id"):
        load_minari_data_dir(meta_file.parent, source="mine")

    # a garbage study.json, and `report` on a single run folder
    study = tmp_path / "study"
    study.mkdir()
    (study / "study.json").write_text('{"suite": "smoke", "budget": 3}')
    assert "not a readable shiftrl study record" in one_error_line(cli("report", study))
    line = one_error_line(cli("bench", "smoke", "--out", study))
    assert "study.json" in line
    line = one_error_line(cli("bench", "smoke", "--only", "", "--out", tmp_path / "s3"))
    assert "holds no pattern" in line and not (tmp_path / "s3").exists()
    curves = {"pointreach-mixed.bc/seed0": [(100, 1.0), (200, 2.0)]}
    fake = fake_study(tmp_path / "s2", "smoke", "quick", (0,), curves)
    result = cli("report", fake / "pointreach-mixed.bc" / "seed0")
    assert result.exit_code == 0, result.output
