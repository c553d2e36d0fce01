"""Run a suite: plan its jobs, skip finished ones, resume interrupted ones, run the rest in
parallel (a local process pool or Ray), show a live table, record the study.

Study folder (`--out`, default `runs/bench/<suite>-<profile>`; a profile scaled with
`steps` is labelled `<profile>-<steps>`, e.g. `runs/bench/spot-quick-20k`):
    study.json             the suite as run (cells, layout, budget, seeds) and each job's status
    <cell>/seed<k>/        one run folder per job (config.json, metrics.jsonl, checkpoints/, ...)
    <cell>/seed<k>/online/ an offline-to-online job's online phase (finetune.json, metrics.jsonl)
    logs/<cell>/seed<k>.log  the job's output and, when it failed, its traceback
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shiftrl import __version__
from shiftrl.bench.backends import BACKENDS, make_backend
from shiftrl.bench.monitor import Monitor
from shiftrl.bench.online_jobs import check_job as check_online_job
from shiftrl.bench.seed_groups import plan_calls
from shiftrl.bench.suites import Budget, Cell, Suite, get_suite
from shiftrl.bench.worker import job_config, job_finished, job_scores, online_plan
from shiftrl.core.errors import ConfigError
from shiftrl.core.interrupt import sigterm_as_interrupt
from shiftrl.core.jsonfile import read_json_object
from shiftrl.training import rundir

STUDY_FILE = "study.json"


# ---------------------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    suite: str
    profile: str
    cell: Cell
    seed: int
    budget: Budget

    @property
    def id(self) -> str:
        return f"{self.cell.name}/seed{self.seed}"

    @property
    def online_steps(self) -> int | None:
        """Steps of the online phase (None for an offline-only job)."""
        online = self.cell.online
        return None if online is None else self.budget.online.online_steps(online)

    @property
    def total_steps(self) -> int:
        """Offline steps plus online steps: the live table's progress."""
        if self.cell.online_only:
            return self.online_steps or 0
        return self.budget.steps + (self.online_steps or 0)

    @property
    def data_ids(self) -> tuple[str, ...]:
        if self.cell.online_only:
            return ()
        return (self.cell.target, *self.cell.sources)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dir": self.id,
            "suite": self.suite,
            "profile": self.profile,
            "seed": self.seed,
            "cell": self.cell.to_json(),
            "budget": self.budget.to_json(),
        }


def parse_seeds(text: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """'0,1,2' or '0-4' (inclusive) or a sequence of ints; None keeps the profile's seeds."""
    if text is None:
        return None
    if not isinstance(text, str):
        return tuple(int(s) for s in text)
    seeds: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                seeds += range(lo, hi + 1)
            else:
                seeds.append(int(part))
    except ValueError:
        raise ConfigError(f"--seeds '{text}': expected e.g. 0,1,2 or 0-4") from None
    if not seeds:
        raise ConfigError(f"--seeds '{text}': expected e.g. 0,1,2 or 0-4")
    return tuple(dict.fromkeys(seeds))


def _matches(job: Job, pattern: str) -> bool:
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(job.id, pattern) or fnmatch.fnmatchcase(job.cell.name, pattern)
    return pattern in job.id


def plan_jobs(
    suite: Suite | str,
    profile: str = "quick",
    seeds: Sequence[int] | None = None,
    only: Sequence[str] | str | None = None,
    steps: int | None = None,
    online_steps: int | None = None,
) -> list[Job]:
    """Every job of the suite under `profile` (optionally other seeds, filtered by `only`).

    `steps`: run the profile scaled to that many gradient steps (`Budget.scaled`); the
    jobs' profile is then the scaled label (`quick-20k`), which `profile` may also be.
    `online_steps`: every online phase at that many steps (`Budget.with_online_steps`;
    label `quick-10k-online20k`).

    `only`: glob patterns matched against job ids (`hopper-medium.iql/seed0`) and cell names,
    or plain substrings; a job runs when any pattern matches. Each job's config is built
    here (and its online phase checked), so a bad setting in a suite is reported before
    anything runs.
    """
    suite = get_suite(suite) if isinstance(suite, str) else suite
    profile, budget = suite.resolve(profile, steps, online_steps)
    if not suite.cells:
        raise ConfigError(f"suite '{suite.name}' has no jobs yet: {suite.placeholder or 'empty'}")
    seeds = tuple(seeds) if seeds is not None else budget.seeds
    # seed-major: a first score for every cell early, and later seeds reuse compiled code
    jobs = [Job(suite.name, profile, c, s, budget) for s in seeds for c in suite.cells]
    patterns = [only] if isinstance(only, str) else list(only or [])
    given = only is not None and (not isinstance(only, list | tuple) or len(only) > 0)
    patterns = [p for pat in patterns for p in pat.split(",") if p.strip()]
    if given and not patterns:
        raise ConfigError(
            f"--only {only!r} holds no pattern; leave --only out to run every job of the suite"
        )
    if patterns:
        jobs = [j for j in jobs if any(_matches(j, p.strip()) for p in patterns)]
        if not jobs:
            raise ConfigError(
                f"--only {','.join(patterns)} matches no job of suite '{suite.name}' "
                f"(job ids look like '{suite.cells[0].name}/seed{seeds[0]}')"
            )
    built: set = set()
    for job in jobs:
        try:
            if job.cell.online_only:
                check_online_job(job.to_json())
                continue
            config = job_config(job.to_json())
            online_plan(job.to_json())
            if (key := (config.algo, config.learner, config.steps)) not in built:
                built.add(key)
                _check_learner(config)
        except ConfigError as e:
            raise ConfigError(f"suite '{suite.name}', cell '{job.cell.name}': {e}") from None
    return jobs


def _check_learner(config) -> None:
    """Build the job's learner (no arrays, no compilation), so the checks its constructor
    makes against the run (e.g. BRAC-p's cloning phase must fit in the steps) fail here,
    before the sweep starts, rather than in every such job."""
    from shiftrl.learners import get_learner
    from shiftrl.learners.base import LearnerSpec

    get_learner(config.algo)(
        config.learner, LearnerSpec(obs_dim=1, act_dim=1, total_steps=config.steps)
    )


# ---------------------------------------------------------------------------------------
# Job states and the study record
# ---------------------------------------------------------------------------------------
@dataclass
class JobState:
    job: Job
    status: str = "pending"  # pending | running | done | skipped | failed
    step: int = 0
    score: float | None = None
    best: float | None = None
    final: float | None = None
    message: str = ""
    resumed_from: int = 0
    started: float | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "final": self.final,
            "best": self.best,
            "resumed_from": self.resumed_from,
            "seconds": round(self.seconds, 2),
            "message": self.message,
        }


@dataclass
class SweepResult:
    dir: Path
    suite: str
    profile: str
    states: list[JobState] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(s.status == status for s in self.states)

    @property
    def failed(self) -> list[JobState]:
        return [s for s in self.states if s.status == "failed"]

    def summary(self) -> str:
        parts = [f"{self.count(k)} {k}" for k in ("done", "skipped", "failed") if self.count(k)]
        return f"{self.suite}/{self.profile}: {', '.join(parts) or 'nothing to do'} -> {self.dir}"


def default_out(suite: str, profile: str) -> Path:
    return Path("runs") / "bench" / f"{suite}-{profile}"


def _check_study_dir(study_dir: Path, suite: Suite, profile: str) -> dict[str, Any]:
    """study.json of `study_dir` when it holds this suite at this profile (label), {} when
    the folder is new or empty; any other folder is refused with one line."""
    path = study_dir / STUDY_FILE
    rundir.check_target(study_dir, "study folder")
    if not path.exists():
        if study_dir.exists() and any(p.name != rundir.LOCK for p in study_dir.iterdir()):
            raise ConfigError(
                f"{study_dir} exists and is not a study folder (no {STUDY_FILE}); choose another --out"
            )
        return {}
    old = read_json_object(path, "the study folder is damaged", ConfigError)
    if (old.get("suite"), old.get("profile")) == (suite.name, profile):
        return old
    budget = old.get("budget") or {}
    if not isinstance(budget, dict):
        raise ConfigError(f"{path}: not a shiftrl study record; the study folder is damaged")
    old_steps = budget.get("steps")
    old_profile = str(old.get("profile"))
    same = suite.profile_name(old_profile) == suite.profile_name(profile)
    if old.get("suite") == suite.name and same and isinstance(old_steps, int):
        steps = suite.budget(profile).steps
        raise ConfigError(
            f"{study_dir} holds the study '{suite.name}' (profile {old_profile}, "
            f"{old_steps:,} steps), not {profile} ({steps:,} steps); resume it with the "
            "same --profile, --steps and --online-steps, or choose another --out"
        )
    raise ConfigError(
        f"{study_dir} holds the study '{old.get('suite')}' (profile {old.get('profile')}); "
        "choose another --out"
    )


def write_study(
    study_dir: Path,
    suite: Suite,
    profile: str,
    seeds: Sequence[int],
    jobs: dict[str, dict],
    backend: str,
) -> None:
    budget = suite.budget(profile)  # a scaled label (quick-20k) records the scaled budget
    record = {
        "suite": suite.name,
        "profile": profile,
        "description": suite.description,
        "placeholder": suite.placeholder,
        "references": list(suite.references),
        "budget": budget.to_json(),
        "seeds": sorted(seeds),
        "layout": suite.layout_or_default().to_json(),
        "cells": [c.to_json() for c in suite.cells],
        "jobs": dict(sorted(jobs.items())),
        "backend": backend,
        "shiftrl_version": __version__,
    }
    tmp = study_dir / f".{STUDY_FILE}.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, study_dir / STUDY_FILE)


# ---------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------
def run_suite(
    suite: str | Suite,
    profile: str = "quick",
    *,
    backend: str = "local",
    workers: int | None = None,
    seeds: Sequence[int] | str | None = None,
    only: Sequence[str] | str | None = None,
    out: str | Path | None = None,
    ray_address: str | None = None,
    cpus_per_job: float | None = None,
    gpus_per_job: float | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    steps: int | None = None,
    online_steps: int | None = None,
    vmap_seeds: int = 1,
    reuse: Sequence[str | Path] = (),
) -> SweepResult:
    """Run every unfinished job of `suite` under `profile`; see the module docstring.

    `steps` scales the profile to that many gradient steps (`Budget.scaled`): the study is
    labelled `<profile>-<steps>` (`quick-20k`, also the default folder's suffix), and a
    study folder of the profile at other steps is refused. `online_steps` sets every online
    phase of offline-to-online cells to that many steps (label suffix `-online20k`).
    `vmap_seeds` > 1 trains up to that many seeds of a cell as one vmapped program
    (`seed_groups`): the same run folders, faster on an accelerator. `reuse`: study folders
    whose finished runs of exactly these jobs' configurations are copied in instead of
    trained again (`bench.reuse`).

    Finished jobs (a metrics row at the final step; for offline-to-online jobs also the
    online phase's finetune.json) are skipped; interrupted ones resume from their last
    checkpoint. A failing job is recorded with a one-line message and the
    sweep goes on. `workers` defaults to the machine's cores (local backend) or to what
    the Ray cluster can schedule.
    """
    suite = get_suite(suite) if isinstance(suite, str) else suite
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend '{backend}'; available: {', '.join(BACKENDS)}")
    if workers is not None and workers < 1:
        raise ConfigError("--workers must be at least 1")
    if vmap_seeds < 1:
        raise ConfigError("--vmap-seeds must be at least 1 (1: one job per seed)")
    seed_list = parse_seeds(seeds) if isinstance(seeds, str) else seeds
    profile, _ = suite.resolve(profile, steps, online_steps)
    jobs = plan_jobs(suite, profile, seed_list, only)
    study_dir = Path(out) if out is not None else default_out(suite.name, profile)
    _check_study_dir(study_dir, suite, profile)  # refuses a foreign folder before writing
    rundir.make_dir(study_dir, "study folder")
    # one sweep per study folder at a time: a second `bench` on it is refused with the pid
    lock = rundir.FolderLock(study_dir, "study folder").acquire()
    try:
        old = _check_study_dir(study_dir, suite, profile)
        if reuse:
            from shiftrl.bench.reuse import reuse_finished_runs

            reused = reuse_finished_runs(jobs, study_dir, reuse)
            echo(f"reused {len(reused)} finished run(s) from {', '.join(map(str, reuse))}")
        if only:  # plain patterns match as substrings: show what was selected
            cells = list(dict.fromkeys(j.cell.name for j in jobs))
            shown = ", ".join(cells[:6]) + (
                f", ... ({len(cells) - 6} more)" if len(cells) > 6 else ""
            )
            echo(f"--only selects {len(cells)} cell(s), {len(jobs)} job(s): {shown}")
        with sigterm_as_interrupt():  # `kill PID`: workers save, the record is written
            return _sweep(
                suite,
                profile,
                jobs,
                study_dir,
                old,
                backend,
                workers,
                ray_address,
                cpus_per_job,
                gpus_per_job,
                progress,
                echo,
                vmap_seeds,
            )
    finally:
        lock.release()


def _sweep(
    suite: Suite,
    profile: str,
    jobs: list,
    study_dir: Path,
    old: dict[str, Any],
    backend: str,
    workers: int | None,
    ray_address: str | None,
    cpus_per_job: float | None,
    gpus_per_job: float | None,
    progress: bool,
    echo: Callable[[str], None],
    vmap_seeds: int,
) -> SweepResult:
    """The sweep of `run_suite`, under the study folder's lock."""

    recorded = dict(old.get("jobs", {}))
    all_seeds = set(old.get("seeds", [])) | {j.seed for j in jobs}
    states = [JobState(j) for j in jobs]
    todo = []
    for st in states:
        if job_finished(study_dir / st.job.id, st.job.to_json()):
            st.status, st.step = "skipped", st.job.total_steps
            scores = job_scores(study_dir / st.job.id, st.job.to_json())
            st.final, st.best = scores.get("final"), scores.get("best")
        else:
            todo.append(st)

    def record() -> None:
        for st in states:
            if st.status in ("done", "skipped", "failed") or st.job.id not in recorded:
                recorded[st.job.id] = st.to_json()
        write_study(study_dir, suite, profile, sorted(all_seeds), recorded, backend)

    record()
    result = SweepResult(study_dir, suite.name, profile, states)
    if not todo:
        return result

    cpus = cpus_per_job if cpus_per_job is not None else suite.cpus_per_job
    gpus = gpus_per_job if gpus_per_job is not None else suite.gpus_per_job
    runner, max_in_flight = make_backend(backend, workers, cpus, gpus, ray_address)

    monitor = Monitor(states, title=f"{suite.name} / {profile} ({backend})", enabled=progress)
    runner.start(study_dir)
    ok = False
    try:
        with monitor:
            # 1. every dataset the jobs need, once each (built-in IDs are made and cached)
            datasets = list(dict.fromkeys(d for st in todo for d in st.job.data_ids))
            monitor.note = f"preparing {len(datasets)} dataset(s)"
            bad: dict[str, str] = {}

            def prepared(res: dict[str, Any]) -> None:
                if res.get("error"):
                    bad[res["dataset"]] = res["error"]

            _drain(runner, [("prepare", d) for d in datasets], None, monitor, prepared)
            monitor.note = ""
            runnable = []
            for st in todo:
                missing = [bad[d] for d in st.job.data_ids if d in bad]
                if missing:
                    monitor.result(st, {"status": "failed", "message": missing[0]})
                    if not progress:
                        echo(monitor.line(st))
                else:
                    runnable.append(st)
            record()

            # 2. the jobs
            by_id = {st.job.id: st for st in states}

            def finished(res: dict[str, Any]) -> None:
                if "group" in res:  # a cell's seeds trained together
                    for member in res["group"]:
                        finished(member)
                    return
                st = by_id[res["id"]]
                monitor.result(st, res)
                if not progress:
                    echo(monitor.line(st))
                record()

            calls = plan_calls([st.job.to_json() for st in runnable], vmap_seeds, study_dir)
            _drain(runner, calls, max_in_flight, monitor, finished)
        ok = True
    finally:
        runner.shutdown(cancel=not ok)
        record()
    return result


def _drain(
    runner: Any,
    calls: list[tuple],
    max_in_flight: int | None,
    monitor: Monitor,
    on_result: Callable[[dict[str, Any]], None],
) -> None:
    """Run `calls` ((fn, *args) for the worker) with at most `max_in_flight` at a time."""
    pending = list(calls)
    in_flight: dict[Any, tuple] = {}
    while pending or in_flight:
        while pending and (max_in_flight is None or len(in_flight) < max_in_flight):
            call = pending.pop(0)
            in_flight[runner.submit(*call)] = call
        done = runner.wait(list(in_flight), timeout=0.5)
        for ev in runner.events():
            monitor.event(ev)
        for handle in done:
            fn, arg = in_flight.pop(handle)[:2]
            try:
                res = runner.result(handle)
            except Exception as e:  # the worker itself died (killed, out of memory, ...)
                msg = f"worker died: {' '.join(str(e).split())[:300]}"
                if fn == "job":
                    res = {"id": arg["id"], "status": "failed", "message": msg}
                elif fn == "group":
                    res = {
                        "group": [{"id": j["id"], "status": "failed", "message": msg} for j in arg]
                    }
                else:
                    res = {"dataset": arg, "error": msg}
            for ev in runner.events():
                monitor.event(ev)
            on_result(res)
        monitor.refresh()
