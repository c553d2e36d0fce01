"""`shiftrl bench` and `shiftrl report` on the command line: one-line errors, the throughput
benchmark behind the same command, and suites / reports on fixed run folders (no training)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from shiftrl.bench.runner import JobState, SweepResult, plan_jobs
from shiftrl.cli import app
from tests.bench_helpers import fake_study

runner = CliRunner()
SMOKE_CURVES = {
    f"pointreach-mixed.{a}/seed{s}": [(100, 10.0 * s), (200, 50.0 + 10 * s + (a == "bc"))]
    for a in ("bc", "td3bc")
    for s in (0, 1)
}


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("shiftrl: error:"), result.output
    return lines[0]


ERRORS = {
    "unknown suite": (["bench", "nope"], "unknown suite 'nope'; available: smoke, locomotion"),
    "near miss": (["bench", "smok"], "did you mean smoke?"),
    "unknown profile": (["bench", "smoke", "--profile", "fast"], "unknown profile 'fast'"),
    "--only matches nothing": (["bench", "smoke", "--only", "zzz*"], "--only zzz* matches no job"),
    "bad seeds": (["bench", "smoke", "--seeds", "x"], "--seeds 'x': expected e.g. 0,1,2 or 0-4"),
    "unknown backend": (["bench", "smoke", "--backend", "slurm"], "unknown backend 'slurm'"),
    "bad --steps": (["bench", "smoke", "--steps", "0"], "--steps must be a positive number"),
    "--steps against a scaled label": (
        ["bench", "smoke", "--profile", "quick-20k", "--steps", "10"],
        "--steps 10 contradicts --profile quick-20k; give --profile quick --steps 10",
    ),
    "suite option on throughput": (
        ["bench", "throughput", "--profile", "quick"],
        "--profile is an option of suites, not of `bench throughput`",
    ),
    "throughput option on a suite": (
        ["bench", "smoke", "--algo", "bc"],
        "--algo is an option of `bench throughput`, not of suites",
    ),
    "report of nothing": (["report", "{tmp}/nowhere"], "no such study folder"),
    "report format": (["report", "{tmp}", "--format", "pdf"], "unknown report format 'pdf'"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bench_errors_are_one_line(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, expected = ERRORS[case]
    line = one_error_line(run(*[a.format(tmp=tmp_path) for a in args]))
    assert expected in line
    assert not (tmp_path / "runs").exists()


def test_bench_lists_suites():
    result = run("bench")
    assert result.exit_code == 0, result.output
    for name in ("smoke", "locomotion", "dara", "srpo", "spot", "ssar", "o2o", "throughput"):
        assert name in result.output


def test_bench_throughput_still_works(monkeypatch):
    calls = []

    def fake(algo, steps, with_peers=True, vmap_seeds=1):
        calls.append((algo, steps, with_peers, vmap_seeds))
        return {"algo": algo, "results": []}

    monkeypatch.setattr("shiftrl.bench.throughput.run_throughput", fake)
    result = run("bench", "throughput", "--algo", "iql", "--steps", 50, "--no-peers", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1]) == {"algo": "iql", "results": []}
    printed = []
    monkeypatch.setattr("shiftrl.bench.throughput.print_report", printed.append)
    assert run("bench", "throughput", "--vmap-seeds", 3).exit_code == 0
    assert calls == [("iql", 50, False, 1), ("td3bc", 2000, True, 3)] and len(printed) == 1


def test_bench_skips_finished_study_and_reports_it(tmp_path):
    study = fake_study(tmp_path / "smoke-quick", "smoke", "quick", (0, 1), SMOKE_CURVES)
    result = run("bench", "smoke", "--out", study, "--no-progress")
    assert result.exit_code == 0, result.output
    assert f"smoke/quick: 4 skipped -> {study}" in result.output
    assert f"report: shiftrl report {study}" in result.output

    result = run("report", study)
    assert result.exit_code == 0, result.output
    text = (study / "report.md").read_text()
    assert "| pointreach-mixed | 56.0 ± 5.0 | 55.0 ± 5.0 |" in text  # bc 51, 61; td3bc 50, 60
    result = run("report", study, "--format", "html")
    assert result.exit_code == 0 and (study / "report.html").exists()

    # a study folder belongs to one suite and profile
    line = one_error_line(run("bench", "smoke", "--profile", "paper", "--out", study))
    assert "holds the study 'smoke' (profile quick)" in line


def test_bench_exit_code_when_jobs_fail(monkeypatch, tmp_path):
    job = plan_jobs("smoke")[0]
    failed = JobState(job, status="failed", message="unknown add-on 'dara'")

    def fake_run_suite(*args, **kwargs):
        return SweepResult(tmp_path, "smoke", "quick", [failed])

    monkeypatch.setattr("shiftrl.bench.runner.run_suite", fake_run_suite)
    result = run("bench", "smoke", "--no-progress")
    assert result.exit_code == 1
    assert "1 failed" in result.output
    assert "pointreach-mixed.bc/seed0: unknown add-on 'dara'" in result.output


def test_bench_throughput_measures_model_based_phases(monkeypatch):
    """`--algo mopo|mobile` reports the three phases beside the fused loops (faked here:
    measuring compiles paper-size programs), and a run's cost adds up from them."""
    from shiftrl.bench.throughput_mb import run_cost

    report = {
        "algo": "mopo",
        "machine": {"cores": 2, "backend": "cpu"},
        "phases": [
            {"phase": "dynamics training", "unit": "samples/s", "shiftrl": 10_000.0,
             "fused": 12_500.0, "shiftrl_ratio": 0.8},
            {"phase": "rollouts", "unit": "transitions/s", "shiftrl": 25_000.0,
             "fused": 25_000.0, "shiftrl_ratio": 1.0},
            {"phase": "policy updates", "unit": "updates/s", "shiftrl": 100.0,
             "fused": 100.0, "shiftrl_ratio": 1.0},
        ],
    }  # fmt: skip
    asked = []
    monkeypatch.setattr(
        "shiftrl.bench.throughput_mb.run_mb_throughput",
        lambda algo, steps: asked.append((algo, steps)) or report,
    )
    result = run("bench", "throughput", "--algo", "mopo", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["phases"][0]["shiftrl_ratio"] == 0.8
    assert asked == [("mopo", 500)]
    result = run("bench", "throughput", "--algo", "mobile")
    assert result.exit_code == 0 and "dynamics training" in result.output
    assert "0.80x" in result.output
    assert "--peers" in one_error_line(run("bench", "throughput", "--algo", "mopo", "--peers"))
    # 30 epochs over 1M transitions, 10k steps with a rollout round every 1,000 (10 rounds)
    cost = run_cost(report, transitions=1_000_000, model_epochs=30, steps=10_000)
    assert (cost.dynamics, cost.rollouts, cost.policy) == (3000.0, 100.0, 100.0)
    assert cost.total == 3200.0


def test_report_lists_learned_models_with_their_cost(tmp_path):
    """A model-based study's report names each learned model once, with the run that trained
    it, its training time and how many runs used it (from the runs' models.json)."""
    from shiftrl.bench.report import write_report

    curves = {
        f"hopper-medium.{algo}/seed{k}": [(100, 10.0)]
        for algo in ("mopo", "mobile")
        for k in (0, 1)
    }
    study = fake_study(tmp_path / "mb-quick", "mb", "quick", (0, 1), curves)
    ensemble = {"key": "abc", "dataset": {"name": "hopper/medium-v0"}, "seconds": 754.2}
    ensemble.update({"epochs": 20, "stopped_early": False})
    for i, job in enumerate(curves):
        record = {**ensemble, "reused": i > 0}
        (study / job / "models.json").write_text(json.dumps({"mopo": {"dynamics": record}}))
    text = write_report(study, reps=20).read_text()
    assert "## Learned models" in text
    line = "| dynamics ensemble | hopper/medium-v0 | 12 min 34 s | 20 epochs | 4 | hopper-medium.mopo/seed0 |"
    assert line in text.splitlines()
    no_models = fake_study(tmp_path / "smoke-quick", "smoke", "quick", (0,), {})
    assert "Learned models" not in write_report(no_models, reps=20).read_text()


def test_report_runs_lists_progress_scores_and_metrics(tmp_path):
    """`shiftrl report DIR --runs --metric GLOB`: one line per planned run, finished,
    partial or not started, with the mean of a metric's last --window values."""
    curves = {
        "pointreach-mixed.bc/seed0": [(100, 10.0), (200, 30.0)],
        "pointreach-mixed.td3bc/seed0": [(100, 40.0)],
    }
    study = fake_study(tmp_path / "smoke-quick", "smoke", "quick", (0, 1), curves)
    metrics = study / "pointreach-mixed.bc/seed0/metrics.jsonl"
    rows = [json.loads(x) for x in metrics.read_text().splitlines()]
    for row, value in zip(rows, (1.0, 2.0), strict=True):
        row["addon/x/gap"], row["other"] = value, 9.0
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # a model-based run's models.json: the time it trained its model (a reused one: 0)
    models = {"mopo": {"dynamics": {"seconds": 61.5, "reused": False}}}
    (study / "pointreach-mixed.bc/seed0/models.json").write_text(json.dumps(models))
    models["mopo"]["dynamics"]["reused"] = True
    (study / "pointreach-mixed.td3bc/seed0/models.json").write_text(json.dumps(models))

    result = run("report", study, "--runs", "--metric", "addon/x/*", "--window", "2")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "| run | status | step | last | best | dynamics s | addon/x/gap |"
    assert (
        "| pointreach-mixed.bc/seed0 | finished | 200 / 200 | 30.0 | 30.0 | 61.5 | 1.5 |" in lines
    )
    assert "| pointreach-mixed.td3bc/seed0 | partial | 100 / 200 | 40.0 | 40.0 | 0 | - |" in lines
    assert "| pointreach-mixed.td3bc/seed1 | not started | 0 / 200 | - | - | - | - |" in lines
    assert not (study / "report.md").exists()  # --runs reads, it writes no report
    line = one_error_line(run("report", study, "--metric", "other"))
    assert "--metric goes with --runs" in line
