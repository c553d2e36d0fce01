"""Fixed run folders for benchmark tests: what a finished job leaves behind, without training."""

from __future__ import annotations

import json
from pathlib import Path

from shiftrl.bench.runner import plan_jobs, write_study
from shiftrl.bench.suites import get_suite
from shiftrl.bench.worker import job_config
from shiftrl.training.checkpoint import checkpoint_path


def fake_run(study_dir: Path, job, curve: list[tuple[int, float]]) -> Path:
    """A run folder for `job` with normalized scores `curve` [(step, score), ...]."""
    run_dir = Path(study_dir) / job.id
    run_dir.mkdir(parents=True)
    config = job_config(job.to_json())
    meta = {"shiftrl_version": "test", "config": config.to_json()}
    (run_dir / "config.json").write_text(json.dumps(meta))
    rows = [{"step": s, "normalized_score": v, "return": v} for s, v in curve]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for step, _ in curve:
        ckpt = checkpoint_path(run_dir, step)
        ckpt.parent.mkdir(exist_ok=True)
        ckpt.write_bytes(b"")
    return run_dir


def fake_study(study_dir: Path, suite: str, profile: str, seeds, curves: dict) -> Path:
    """study.json for `suite` plus fake runs: curves maps job id -> [(step, score), ...]."""
    s = get_suite(suite)
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    write_study(study_dir, s, profile, seeds, {}, "local")
    jobs = {j.id: j for j in plan_jobs(s, profile, seeds)}
    for job_id, curve in curves.items():
        fake_run(study_dir, jobs[job_id], curve)
    return study_dir
