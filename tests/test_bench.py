"""Benchmark suites, sweeps and reports: the smoke suite end to end on the local process pool
and on a real local Ray instance, resume after a killed sweep, a failing job that does not
stop the sweep, and reports (tables, aggregates, plots) from fixed run folders."""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from shiftrl.bench.report import load_study, write_report
from shiftrl.bench.runner import parse_seeds, plan_jobs, run_suite, write_study
from shiftrl.bench.stats import iqm, optimality_gap, stratified_bootstrap
from shiftrl.bench.suites import PROFILES, Cell, Learner, Suite, get_suite, suite_names
from shiftrl.bench.threads import thread_env
from shiftrl.bench.worker import is_finished
from shiftrl.core.errors import ConfigError
from shiftrl.data.compose import subset_episodes
from shiftrl.training.checkpoint import checkpoint_path
from tests.bench_helpers import fake_run, fake_study

SMOKE_IDS = {f"pointreach-mixed.{a}/seed{s}" for a in ("bc", "td3bc") for s in (0, 1)}


def rows(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------------------------------
# The smoke suite, shared by the sweep tests
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "smoke-quick"
    lines: list[str] = []
    result = run_suite("smoke", out=out, workers=2, progress=False, echo=lines.append)
    return result, lines


def test_smoke_sweep_local(smoke):
    result, lines = smoke
    assert {s.job.id: s.status for s in result.states} == dict.fromkeys(SMOKE_IDS, "done")
    assert len(lines) == 4 and all(line.startswith("[done]") for line in lines)
    study = json.loads((result.dir / "study.json").read_text())
    assert study["suite"] == "smoke" and study["profile"] == "quick"
    assert {k: v["status"] for k, v in study["jobs"].items()} == dict.fromkeys(SMOKE_IDS, "done")
    for job_id in SMOKE_IDS:
        run_dir = result.dir / job_id
        config = json.loads((run_dir / "config.json").read_text())["config"]
        assert config["steps"] == 200 and config["eval_every"] == 100
        assert [r["step"] for r in rows(run_dir)] == [100, 200]
        log = (result.dir / "logs" / f"{job_id}.log").read_text()
        assert "200/200 steps (100%)" in log  # plain progress lines: `tail -f` shows a job's
    # a second sweep finds everything finished and starts nothing
    again = run_suite("smoke", out=result.dir, progress=False)
    assert [s.status for s in again.states] == ["skipped"] * 4
    finals = {s.job.id: s.final for s in result.states}
    assert {s.job.id: s.final for s in again.states} == finals


def test_resume_after_killed_sweep_runs_only_missing_jobs(smoke, tmp_path):
    result, _ = smoke
    study = tmp_path / "smoke-quick"
    shutil.copytree(result.dir, study)
    # what a sweep killed mid-way leaves: one job never started, one stopped after its first
    # evaluation (metrics row and checkpoint at step 100 only), two finished
    shutil.rmtree(study / "pointreach-mixed.td3bc/seed1")
    killed = study / "pointreach-mixed.bc/seed1"
    checkpoint_path(killed, 200).unlink()
    first_row = (killed / "metrics.jsonl").read_text().splitlines()[0]
    (killed / "metrics.jsonl").write_text(first_row + "\n")
    assert not is_finished(killed, 200)

    again = run_suite("smoke", out=study, workers=2, progress=False, echo=lambda _: None)
    status = {s.job.id: s.status for s in again.states}
    assert status == {
        "pointreach-mixed.bc/seed0": "skipped",
        "pointreach-mixed.td3bc/seed0": "skipped",
        "pointreach-mixed.bc/seed1": "done",
        "pointreach-mixed.td3bc/seed1": "done",
    }
    resumed = next(s for s in again.states if s.job.id == "pointreach-mixed.bc/seed1")
    assert resumed.resumed_from == 100
    assert (killed / "metrics.jsonl").read_text().splitlines()[0] == first_row
    # resuming reproduces the uninterrupted runs exactly
    original = {s.job.id: s.final for s in result.states}
    assert {s.job.id: s.final for s in again.states} == original


def test_reuse_copies_only_identically_configured_finished_runs(smoke, tmp_path):
    """`--reuse DIR`: a finished run of DIR made with exactly a job's configuration is copied
    in (and skipped as finished, same scores); one made with another setting is not, and a
    folder this study already has is never replaced."""
    from shiftrl.bench.reuse import REUSED_FILE, reusable_run, reuse_finished_runs

    result, _ = smoke
    source = tmp_path / "another-study"
    shutil.copytree(result.dir, source)
    changed = source / "pointreach-mixed.bc/seed1/config.json"
    record = json.loads(changed.read_text())
    record["config"]["learner"]["actor_lr"] = 1e-3  # made with another setting
    changed.write_text(json.dumps(record))

    lines: list[str] = []
    out = tmp_path / "smoke-quick"
    again = run_suite(
        "smoke", out=out, only="*/seed0", reuse=[source], progress=False, echo=lines.append
    )
    assert lines[0] == f"reused 2 finished run(s) from {source}"
    # a plain --only pattern matches as a substring: the selection is printed
    assert lines[1] == (
        "--only selects 2 cell(s), 2 job(s): pointreach-mixed.bc, pointreach-mixed.td3bc"
    )
    assert [s.status for s in again.states] == ["skipped"] * 2
    finals = {s.job.id: s.final for s in result.states}
    for st in again.states:
        assert st.final == finals[st.job.id]
        marker = (out / st.job.id / REUSED_FILE).read_text().strip()
        assert marker == str((source / st.job.id).resolve())
        assert (out / "logs" / f"{st.job.id}.log").exists()

    (bc1,) = plan_jobs("smoke", "quick", seeds=(1,), only="pointreach-mixed.bc")
    assert reusable_run(bc1.to_json(), [source]) is None  # another actor_lr
    assert reusable_run(bc1.to_json(), [result.dir]) == result.dir / bc1.id
    own = out / bc1.id
    own.mkdir(parents=True)
    (own / "config.json").write_text("{}")  # this study's own (unfinished) run
    assert reuse_finished_runs([bc1], out, [result.dir]) == []
    assert (own / "config.json").read_text() == "{}"
    with pytest.raises(ConfigError, match="no such study folder"):
        reuse_finished_runs([bc1], out, [tmp_path / "missing"])


def test_smoke_sweep_on_real_local_ray(smoke, tmp_path):
    pytest.importorskip("ray")
    import ray

    assert not ray.is_initialized()
    result = run_suite(
        "smoke", backend="ray", workers=2, out=tmp_path / "ray", progress=False, echo=print
    )
    assert not ray.is_initialized()  # the Ray instance started for the sweep is shut down
    assert {s.job.id: s.status for s in result.states} == dict.fromkeys(SMOKE_IDS, "done")
    local = {s.job.id: s.final for s in smoke[0].states}
    assert {s.job.id: s.final for s in result.states} == local


def test_vmapped_seed_groups_write_the_same_runs(smoke, tmp_path):
    """--vmap-seeds 2: each cell's two seeds train as one program, into the same run
    folders, with the scores of the one-job-per-seed sweep (up to rounding)."""
    lines: list[str] = []
    result = run_suite(
        "smoke", out=tmp_path / "vm", workers=1, vmap_seeds=2, progress=False, echo=lines.append
    )
    assert {s.job.id: s.status for s in result.states} == dict.fromkeys(SMOKE_IDS, "done")
    assert len(lines) == 4
    single = {s.job.id: s for s in smoke[0].states}
    for st in result.states:
        run_dir = result.dir / st.job.id
        recorded = json.loads((run_dir / "config.json").read_text())["config"]
        alone = json.loads((smoke[0].dir / st.job.id / "config.json").read_text())["config"]
        assert recorded == alone
        assert [r["step"] for r in rows(run_dir)] == [100, 200]
        assert st.final == pytest.approx(single[st.job.id].final, abs=1.0)
    log = (result.dir / "logs" / "pointreach-mixed.td3bc/seed1.log").read_text()
    assert "one vmapped program" in log


def test_seed_groups_plan(tmp_path):
    """Seeds of a cell group when they stand at the same step; a target subset drawn per
    seed and a seed that is further along run alone."""
    from shiftrl.bench.seed_groups import plan_calls

    jobs = [j.to_json() for j in plan_jobs(get_suite("smoke"), "quick", (0, 1, 2))]
    calls = plan_calls(jobs, 2, tmp_path)
    assert [(fn, [j["id"] for j in (arg if fn == "group" else [arg])]) for fn, arg in calls] == [
        ("group", ["pointreach-mixed.bc/seed0", "pointreach-mixed.bc/seed1"]),
        ("job", ["pointreach-mixed.bc/seed2"]),
        ("group", ["pointreach-mixed.td3bc/seed0", "pointreach-mixed.td3bc/seed1"]),
        ("job", ["pointreach-mixed.td3bc/seed2"]),
    ]
    assert plan_calls(jobs, 1, tmp_path) == [("job", j) for j in jobs]
    bc = [j for j in jobs if ".bc/" in j["id"]]
    fake_run(tmp_path, plan_jobs(get_suite("smoke"), "quick", (1,))[0], [(100, 1.0)])
    assert [fn for fn, _ in plan_calls(bc, 3, tmp_path)] == ["group", "job"]  # seed1 at 100
    subset = [dict(j, cell=dict(j["cell"], target_fraction=0.1)) for j in bc]
    assert [fn for fn, _ in plan_calls(subset, 3, tmp_path)] == ["job"] * 3


def test_run_folder_with_another_config_is_refused(tmp_path):
    from shiftrl.bench.worker import run_job

    job = plan_jobs("smoke")[0]
    study = fake_study(tmp_path / "s", "smoke", "quick", (0,), {job.id: [(100, 1.0)]})
    cfg_path = study / job.id / "config.json"
    meta = json.loads(cfg_path.read_text())
    meta["config"]["batch_size"] = 32
    cfg_path.write_text(json.dumps(meta))
    res = run_job(job.to_json(), str(study))
    assert res["status"] == "failed" and res["resumed_from"] == 100
    assert "was started with another configuration (batch_size: 32 -> 64)" in res["message"]


def test_failing_job_does_not_stop_the_sweep(tmp_path):
    smoke_suite = get_suite("smoke")
    ok = smoke_suite.cells[0]
    bad = Cell(
        name="pointreach-mixed.bc-nosuch",
        learner=Learner("bc", addons=({"name": "nosuch"},)),
        target=ok.target,
        eval_envs=ok.eval_envs,
        row=ok.row,
        column="bc + nosuch",
    )
    quick = smoke_suite.profiles["quick"]
    suite = Suite(
        name="failing",
        description="one job with an add-on that does not exist",
        cells=(ok, bad),
        profiles={p: dataclasses.replace(quick, seeds=(0,)) for p in PROFILES},
    )
    lines: list[str] = []
    result = run_suite(suite, out=tmp_path / "f", workers=2, progress=False, echo=lines.append)
    status = {s.job.id: (s.status, s.message) for s in result.states}
    assert status["pointreach-mixed.bc/seed0"] == ("done", "")
    state, message = status["pointreach-mixed.bc-nosuch/seed0"]
    assert state == "failed" and message.startswith("unknown add-on 'nosuch'")
    assert "[failed] pointreach-mixed.bc-nosuch/seed0: unknown add-on 'nosuch'" in "\n".join(lines)
    assert not (tmp_path / "f" / "pointreach-mixed.bc-nosuch" / "seed0").exists()
    log = (tmp_path / "f" / "logs" / "pointreach-mixed.bc-nosuch" / "seed0.log").read_text()
    assert "Traceback" in log

    report = write_report(tmp_path / "f", reps=200).read_text()
    assert "| pointreach-mixed | " in report
    assert (
        "| bc + nosuch |" in report.splitlines()[report.splitlines().index("### Final score") + 2]
    )
    line = next(x for x in report.splitlines() if x.startswith("| pointreach-mixed.bc-nosuch |"))
    assert "| — | — | unknown add-on 'nosuch'" in line


# ---------------------------------------------------------------------------------------
# Reports from fixed run folders
# ---------------------------------------------------------------------------------------
DARA_CURVES = {
    "hopper-medium.iql.10T/seed0": [(50_000, 80.0), (100_000, 50.0)],
    "hopper-medium.iql.10T/seed1": [(50_000, 60.0), (100_000, 70.0)],
    "hopper-medium.iql.1T/seed0": [(100_000, 30.0)],
    "hopper-medium.iql.1T+10S/seed0": [(100_000, 40.0)],
    "hopper-medium.iql.1T+10S/seed1": [(100_000, 40.0)],
    "hopper-medium.iql.1T+10S-dara/seed0": [(100_000, 45.0)],
    "hopper-medium.iql.1T+10S-dara/seed1": [(100_000, 55.0)],
    "hopper-medium-replay.iql.1T+10S/seed0": [(100_000, 40.0)],
    "hopper-medium-replay.iql.1T+10S/seed1": [(100_000, 40.0)],
    "hopper-medium-replay.iql.1T+10S-dara/seed0": [(100_000, 30.0)],
    "hopper-medium-replay.iql.1T+10S-dara/seed1": [(50_000, 35.0), (100_000, 30.0)],
}
DARA_FINAL = """\
| dataset | 10T | 1T | 1T+10S w/o aug | 1T+10S DARA | 1T+10S DARA const | 1T+10S w/o aug, D∪D' | 1T+10S DARA, D∪D' | same-dyn S w/o aug | same-dyn S DARA |
|---|---|---|---|---|---|---|---|---|---|
| hopper-random | — | — | — | — | — | — | — | — | — |
| hopper-medium | 60.0 ± 10.0 | 30.0 ± 0.0 (1/2) | 40.0 ± 0.0 | 50.0 ± 5.0 ↑ | — | — | — | — | — |
| hopper-medium-replay | — | — | 40.0 ± 0.0 | 30.0 ± 0.0 ↓ | — | — | — | — | — |
| hopper-medium-expert | — | — | — | — | — | — | — | — | — |
| walker2d-random | — | — | — | — | — | — | — | — | — |
| walker2d-medium | — | — | — | — | — | — | — | — | — |
| walker2d-medium-replay | — | — | — | — | — | — | — | — | — |
| walker2d-medium-expert | — | — | — | — | — | — | — | — | — |"""


@pytest.fixture(scope="module")
def dara_report(tmp_path_factory):
    d = fake_study(
        tmp_path_factory.mktemp("report") / "dara-quick", "dara", "quick", (0, 1), DARA_CURVES
    )
    text = write_report(d, reps=500).read_text()
    return d, text, (d / "plots" / "scores.png").read_bytes()


def test_report_from_fixed_run_folders_gives_the_papers_table(dara_report):
    dara_study, text, _ = dara_report
    lines = text.splitlines()
    assert lines[0] == "# Benchmark report: dara (profile `quick`)"
    blocks = [x for x in lines if x.startswith("## DARA (target: unshifted dynamics")]
    bases = ["BEAR", "BRAC-p", "BCQ", "CQL", "AWR", "IQL"]
    assert [b.rsplit(": ", 1)[1] for b in blocks] == [
        f"{b}, source {s}" for s in ("body mass x2", "gravity x0.5", "friction x0.5") for b in bases
    ] + ["MOPO, source body mass x2"]  # the paper's model-based block
    iql = lines.index(blocks[5])  # IQL with the paper's body-mass source
    final = lines.index("### Final score", iql) + 2
    assert "\n".join(lines[final : final + 10]) == DARA_FINAL
    bear = lines.index("### Final score") + 2  # the BEAR block has no runs: all missing
    assert lines[bear + 3] == "| hopper-medium | — | — | — | — |"  # no control columns
    # each run's mean over its last three evaluations: the medium-replay DARA seed 1 ran
    # two (35, 30 -> 32.5), seed 0 one (30): 31.25 ± 1.25 over the seeds
    last3 = lines.index("### Last three evaluations", iql) + 2
    assert lines[last3 + 4].startswith(
        "| hopper-medium-replay | — | — | 40.0 ± 0.0 | 31.2 ± 1.2 ↓ |"
    )
    # paired by seed against the arrows' baselines: DARA 45, 55 vs w/o aug 40, 40 (final);
    # medium-replay: 30 vs 40 twice, last three 30 and 32.5 vs 40
    paired = lines.index("### Paired by seed", iql)
    assert paired < lines.index("## DARA (target: unshifted dynamics): IQL, source gravity x0.5")
    assert lines[paired + 6 : paired + 8] == [
        "| hopper-medium | 1T+10S DARA | 1T+10S w/o aug | +10.0 (+5.0, +15.0) | +10.0 (+5.0, +15.0) |",
        "| hopper-medium-replay | 1T+10S DARA | 1T+10S w/o aug | -10.0 (-10.0, -10.0) | -8.8 (-10.0, -7.5) |",
    ]
    best = lines.index("### Best score", iql) + 2
    controls = " — |" * 5  # IQL's control columns, not run here
    assert lines[best + 3] == (
        "| hopper-medium | 75.0 ± 5.0 | 30.0 ± 0.0 (1/2) | 40.0 ± 0.0 | 50.0 ± 5.0 ↑ |" + controls
    )
    assert lines[best + 4] == (
        "| hopper-medium-replay | — | — | 40.0 ± 0.0 | 32.5 ± 2.5 ↓ |" + controls
    )
    # aggregates over the rows as tasks. First over the tasks all four columns finished
    # (hopper-medium only: 10T and 1T lack medium-replay), so DARA's final scores are 45, 55
    agg = lines.index("## Aggregate metrics (final score)")
    own = lines.index("### Over each method's own tasks", agg)
    common = [x for x in lines[agg:own] if x.startswith("| IQL, source body mass x2 / ")]
    assert [x.split(" | ")[1:3] for x in common] == [["2", "1"], ["1", "1"], ["2", "1"], ["2", "1"]]
    assert common[3].startswith("| IQL, source body mass x2 / 1T+10S DARA | 2 | 1 | 50.0 [")
    # then each method with more tasks over its own: DARA's 45, 55 | 30, 30
    rows = [x for x in lines[own : own + 8] if x.startswith("| IQL, source body mass x2 / ")]
    assert [x.split(" / ")[1].split(" | ")[0] for x in rows] == ["1T+10S w/o aug", "1T+10S DARA"]
    iqm_, mean_, gap = (c.strip() for c in rows[1].split("|")[4:7])
    assert iqm_.startswith("37.5 [") and mean_.startswith("40.0 [") and gap.startswith("60.0 [")
    assert "Incomplete suite" not in text and "**Runs finished:** 11 of 1512." in text
    for png in ("scores.png", "aggregates.png"):
        assert (dara_study / "plots" / png).stat().st_size > 1000
    curves = sorted((dara_study / "plots" / "curves").glob("*.png"))  # one figure per block
    assert curves and all(p.stat().st_size > 1000 for p in curves)
    assert text.count("](plots/curves/") == len(curves)
    assert "**Few runs:**" in text  # 1 or 2 runs per method: the intervals say little


def test_report_is_reproducible_and_renders_html(dara_report):
    dara_study, first, png = dara_report
    assert write_report(dara_study, reps=500).read_text() == first
    assert (dara_study / "plots" / "scores.png").read_bytes() == png
    page = write_report(dara_study, "html", reps=500).read_text()
    assert page.startswith("<!DOCTYPE html>") and "<td>50.0 ± 5.0 ↑</td>" in page
    assert '<img src="plots/scores.png"' in page


def test_report_without_study_json(dara_report, tmp_path):
    dara_study = dara_report[0]
    runs = tmp_path / "loose"
    shutil.copytree(dara_study / "hopper-medium.iql.10T", runs / "a")
    study = load_study(runs)
    assert [c.cell.name for c in study.cells] == ["a"]
    assert study.cells[0].stat("final") == (60.0, 10.0)


def test_paired_differences_use_only_the_seeds_both_cells_finished():
    from shiftrl.bench.paired import fmt_differences, seed_differences
    from shiftrl.bench.results import CellResult, RunResult

    def cell(runs: dict[int, list[float]], planned: int = 30) -> CellResult:
        results = [RunResult(seed, [10, 20, 30][: len(v)], v, planned) for seed, v in runs.items()]
        return CellResult(cell=None, runs=results)  # type: ignore[arg-type]

    method = cell({0: [50.0, 60.0, 70.0], 1: [10.0, 20.0, 30.0], 2: [99.0]})  # seed 2 unfinished
    base = cell({1: [0.0, 0.0, 40.0], 0: [20.0, 20.0, 20.0], 3: [5.0, 5.0, 5.0]})
    assert seed_differences(method, base, "final") == [50.0, -10.0]  # seeds 0 and 1, in order
    assert seed_differences(method, base, "last3") == [40.0, 20.0 - 40.0 / 3]
    assert fmt_differences([50.0, -10.0]) == "+20.0 (+50.0, -10.0)"
    assert fmt_differences([]) == "—"


def test_report_of_a_selection_shows_only_the_cells_it_ran(tmp_path):
    suite = get_suite("dara")
    jobs = plan_jobs(suite, "quick", (0,), ["hopper-medium.iql.*"])
    write_study(tmp_path, suite, "quick", (0,), {j.id: {"status": "done"} for j in jobs}, "local")
    for job in jobs:
        fake_run(tmp_path, job, [(100_000, 50.0)])
    text = write_report(tmp_path, reps=200).read_text()
    # the body-mass block's four cells, three controls and two same-dynamics cells, and the
    # gravity / friction blocks' two cells and three controls each
    assert "**Cells:** 19 of the suite's 756" in text and "**Runs finished:** 19 of 19." in text
    assert [x for x in text.splitlines() if x.startswith("## DARA")] == [
        f"## DARA (target: unshifted dynamics): IQL, source {s}"
        for s in ("body mass x2", "gravity x0.5", "friction x0.5")
    ]
    scores = [x for x in text.splitlines() if x.startswith("| ") and "±" in x]
    first = [x.split(" | ")[0] for x in scores]
    rows = [x[2:] for x in first if x[2:].startswith(("hopper", "walker2d")) and "." not in x]
    assert rows == ["hopper-medium"] * 9  # final, last-three and best tables: the selected row only


# ---------------------------------------------------------------------------------------
# Suites, job planning, data subsets, statistics
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", suite_names())
def test_every_suite_plans_under_both_profiles(name):
    from shiftrl.training.evaluation import check_env_id

    suite = get_suite(name)
    if not suite.cells:
        assert suite.placeholder
        with pytest.raises(ConfigError, match="has no jobs yet"):
            plan_jobs(suite)
        return
    for profile in PROFILES:
        jobs = plan_jobs(suite, profile)  # builds (and so validates) every job's config
        assert len(jobs) == len(suite.cells) * len(suite.profiles[profile].seeds)
        assert len({j.id for j in jobs}) == len(jobs)
    for env in {e for c in suite.cells for e in c.eval_envs}:
        assert check_env_id(env) == env
    layout = suite.layout_or_default()
    assert set(layout.columns) >= {c.column for c in suite.cells} or not layout.columns


def test_paper_and_quick_budgets():
    loco = get_suite("locomotion")
    paper, quick = loco.budget("paper"), loco.budget("quick")
    assert (paper.steps, paper.eval_every, paper.eval_episodes, paper.hidden) == (
        1_000_000,
        5000,
        10,
        None,
    )
    assert quick.steps == 100_000 and quick.hidden is None
    cql = next(j for j in plan_jobs(loco, "paper", (0,)) if j.cell.learner.algo == "cql")
    from shiftrl.bench.worker import job_config

    assert job_config(cql.to_json()).learner.hidden == (256, 256, 256)
    dara = get_suite("dara")
    assert dara.layout.arrows == {
        "1T+10S DARA": "1T+10S w/o aug",
        "1T+10S DARA const": "1T+10S DARA",
        "1T+10S DARA, D∪D'": "1T+10S w/o aug, D∪D'",
        "same-dyn S DARA": "same-dyn S w/o aug",
    }
    dara_cell = next(c for c in dara.cells if c.column == "1T+10S DARA")
    assert dara_cell.learner.addons == ({"name": "dara"},) and dara_cell.target_fraction == 0.1


def test_only_patterns_and_seeds():
    jobs = plan_jobs("locomotion", "quick", seeds=(0,), only=["hopper-*", "*.cql"])
    ids = {j.id for j in jobs}
    assert "hopper-medium.bc/seed0" in ids and "walker2d-medium.cql/seed0" in ids
    assert "walker2d-medium.bc/seed0" not in ids
    assert {j.id for j in plan_jobs("smoke", only="td3bc")} == {
        "pointreach-mixed.td3bc/seed0",
        "pointreach-mixed.td3bc/seed1",
    }
    with pytest.raises(ConfigError, match="matches no job"):
        plan_jobs("smoke", only="nothing*")
    assert parse_seeds("0-2,5") == (0, 1, 2, 5)
    with pytest.raises(ConfigError, match="--seeds"):
        parse_seeds("a,b")


def test_live_table():
    from rich.console import Console

    from shiftrl.bench.monitor import Monitor
    from shiftrl.bench.runner import JobState

    states = [JobState(j) for j in plan_jobs("smoke")]
    console = Console(record=True, width=120)
    monitor = Monitor(states, "smoke / quick (local)", enabled=False, console=console)
    a, b, c = (s.job.id for s in states[:3])
    monitor.event(("start", a, {"resumed_from": 100}))
    monitor.event(("eval", a, {"step": 200, "score": 12.5}))
    monitor.event(("start", b, {"resumed_from": 0}))
    monitor.result(states[1], {"status": "done", "final": 40.0, "best": 50.0, "seconds": 3})
    monitor.result(states[2], {"status": "failed", "message": "unknown add-on 'x'"})
    console.print(monitor.render())
    text = console.export_text()
    assert "4 jobs  1 pending  1 running  1 done  1 failed" in text
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()[2:]}
    assert rows[a][:4] == ["running", "200/200", "12.5", "12.5"]
    assert rows[b][:4] == ["done", "200/200", "40.0", "50.0"]
    assert " ".join(rows[c][:4]) == "failed: unknown add-on 'x'"
    assert rows[states[3].job.id][:2] == ["pending", "0/200"]
    assert monitor.line(states[1]) == f"[done] {b}: final 40.0, best 50.0 (3s)"
    assert monitor.line(states[2]) == f"[failed] {c}: unknown add-on 'x'"


def test_worker_thread_environment():
    env = thread_env(1)
    assert env["NPROC"] == "1" and env["OMP_NUM_THREADS"] == "1"
    assert "--xla_cpu_multi_thread_eigen=false" in env["XLA_FLAGS"]
    assert thread_env(2)["NPROC"] == "2"


_STOP_AWARE_LOOP = """
def training_loop(marker, *_, post):  # a run's chunk loop: it saves when asked to stop
    from shiftrl.core.interrupt import StopRequest

    with StopRequest() as stop:
        print(os.getpid(), flush=True)
        while not stop.requested:
            time.sleep(0.05)
        open(marker, "w").write("checkpoint")
        stop.check()


worker.CALLS["training_loop"] = training_loop  # runs in each spawned worker too
"""

_ORPHAN_SWEEP = (
    """
import multiprocessing as mp, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from shiftrl.bench import worker
from shiftrl.bench.worker import init_pool_worker, pool_call


"""
    + _STOP_AWARE_LOOP
    + """

if __name__ == "__main__":
    ex = ProcessPoolExecutor(2, mp_context=mp.get_context("spawn"),
                             initializer=init_pool_worker, initargs=({}, None, os.getpid()))
    ex.submit(pool_call, "training_loop", sys.argv[1])
    ex.submit(time.sleep, 600)  # a long job with no stop handling
    time.sleep(600)
"""
)


def test_pool_workers_save_and_exit_when_the_sweep_is_killed(tmp_path):
    """A sweep killed outright (SIGKILL: no cleanup runs in it) leaves no worker training
    on, and a worker in a training loop saves its checkpoint on the way out."""
    script, marker = tmp_path / "sweep.py", tmp_path / "saved"
    script.write_text(_ORPHAN_SWEEP)
    sweep = subprocess.Popen(
        [sys.executable, str(script), str(marker)], stdout=subprocess.PIPE, text=True
    )
    looping = int(sweep.stdout.readline())  # the loop is running in this worker
    workers = [p for p in _children(sweep.pid) if p != looping]
    sweep.kill()
    sweep.wait()
    # generous: on a loaded machine a worker may still be importing when the sweep dies
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and any(map(_alive, [looping, *workers])):
        time.sleep(0.2)
    left = [p for p in [looping, *workers] if _alive(p)]
    assert not left, [Path(f"/proc/{p}/cmdline").read_bytes()[:120] for p in left]
    assert marker.read_text() == "checkpoint"


_STOPPING_SWEEP = (
    """
import os, sys, time
from pathlib import Path
from shiftrl.bench import worker
from shiftrl.bench.backends import LocalBackend


"""
    + _STOP_AWARE_LOOP
    + """

if __name__ == "__main__":
    backend = LocalBackend(2)
    backend.start(Path(sys.argv[2]))
    backend.submit("training_loop", sys.argv[1])
    sys.stdin.readline()  # the test saw the loop start
    t0 = time.monotonic()
    backend.shutdown(cancel=True)  # what a sweep does when it stops on an error or Ctrl-C
    print(f"{time.monotonic() - t0:.1f}", flush=True)
"""
)


def test_a_stopping_sweep_lets_its_workers_save_then_leaves(tmp_path):
    """A sweep stopping early (an error, Ctrl-C) sends its workers SIGTERM: a run in its
    training loop saves the step it is at and its worker exits at once, well within the
    30 s grace after which stragglers are killed."""
    script, marker = tmp_path / "sweep.py", tmp_path / "saved"
    script.write_text(_STOPPING_SWEEP)
    sweep = subprocess.Popen(
        [sys.executable, str(script), str(marker), str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        looping = int(sweep.stdout.readline())
        sweep.stdin.write("go\n")
        sweep.stdin.flush()
        took = float(sweep.stdout.readline())
        assert sweep.wait(timeout=60) == 0
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert marker.read_text() == "checkpoint"
    assert not _alive(looping)
    assert took < 20  # it left on its own, not at the grace's end


def test_a_worker_whose_sweep_died_before_it_started_leaves_too():
    """A worker still importing when the sweep dies has been re-parented by the time its
    watcher starts; given the sweep's pid, it still sees that the sweep is gone."""
    code = (
        "import os, time\n"
        "from shiftrl.bench.worker import exit_with_parent\n"
        "exit_with_parent(parent=-1, poll_s=0.1)  # a sweep that is no longer its parent\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        assert proc.wait(timeout=45) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()


def _children(pid: int) -> list[int]:
    kids = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in kids.read_text().split()] if kids.exists() else []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_subset_episodes(point_reach_data):
    ds = point_reach_data  # 10-step episodes
    sub = subset_episodes(ds, fraction=0.1, seed=0)
    assert len(sub) == 400 and sub.num_episodes == 40
    assert sub.metadata.name.endswith("[10%]")
    assert np.array_equal(sub.observations, subset_episodes(ds, fraction=0.1).observations)
    other = subset_episodes(ds, fraction=0.1, seed=1)
    assert not np.array_equal(sub.observations, other.observations)
    assert subset_episodes(ds, count=3).num_episodes == 3
    assert subset_episodes(ds, fraction=1.0) is ds
    for kwargs in ({}, {"fraction": 0.1, "count": 2}, {"fraction": 0.0}, {"count": 10_000}):
        with pytest.raises(ConfigError):
            subset_episodes(ds, **kwargs)


def test_aggregate_metrics_by_hand():
    assert iqm(np.arange(1.0, 9.0)) == 4.5  # drops 2 at each end of 8
    assert iqm(np.array([0.0, 1.0, 2.0, 3.0, 100.0])) == 2.0  # drops int(1.25) = 1
    assert optimality_gap(np.array([50.0, 120.0, 90.0])) == pytest.approx(20.0)
    single = stratified_bootstrap([[10.0], [20.0], [30.0]], reps=100)
    assert {k: (v.point, v.low, v.high) for k, v in single.items()} == {
        "IQM": (20.0, 20.0, 20.0),
        "mean": (20.0, 20.0, 20.0),
        "optimality gap": (80.0, 80.0, 80.0),
    }


def test_aggregate_metrics_match_rliable():
    """rliable 1.2.0 (arch 7.2.0, pandas 2.3.3), get_interval_estimates, 50,000 reps, on
    5 runs x 4 tasks drawn as below: points 53.237 / 56.691 / 46.014, CIs [46.66, 61.77],
    [44.04, 70.28], [35.63, 56.58] for IQM / mean / optimality gap."""
    scores = np.random.default_rng(3).normal(60, 25, size=(5, 4))
    res = stratified_bootstrap(scores.T.tolist(), reps=50_000)
    expected = {
        "IQM": (53.237, 46.66, 61.77),
        "mean": (56.691, 44.04, 70.28),
        "optimality gap": (46.014, 35.63, 56.58),
    }
    for k, (point, low, high) in expected.items():
        assert res[k].point == pytest.approx(point, abs=1e-3)
        assert res[k].low == pytest.approx(low, abs=0.6) and res[k].high == pytest.approx(
            high, abs=0.6
        )


def test_reproduce_block_names_the_folder_and_the_selection(dara_report):
    """The report's Reproduce block names the study folder as given to `report` and, for a
    study run on a selection, the cells it holds (not the whole suite's jobs)."""
    import dataclasses

    from shiftrl.bench.report import reproduce_command
    from shiftrl.bench.results import _data_row, load_study

    dara_study, text, _ = dara_report
    study = load_study(dara_study)
    assert f"--out {dara_study} --seeds 0,1\nshiftrl report {dara_study}" in text
    assert "--only" not in reproduce_command(study)
    picked = dataclasses.replace(study, cells=study.cells[:2], unselected=7)
    names = ",".join(c.cell.name for c in study.cells[:2])
    assert f"--only {names}" in reproduce_command(picked)
    # an alias and its canonical ID are one row of the tables
    assert _data_row("hopper/medium-v0") == _data_row("hopper-base/medium-v0")
    assert _data_row("runs/mine.npz") == "runs/mine.npz"
