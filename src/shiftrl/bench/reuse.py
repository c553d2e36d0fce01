"""Reusing finished runs of another study (`shiftrl bench SUITE --reuse DIR`).

Suites share cells: TD3+BC at its paper settings is the baseline column of `locomotion`,
`spot` and `ssar`, and a CPU machine spends 7-20 minutes on each of its seeds. A job whose
run folder in DIR is finished and was made with exactly this job's configuration (every
setting, the seed, the data, the budget: the `config` of its config.json, compared as
JSON) is copied into this study instead of trained again; it is then skipped as finished.
Nothing is overwritten: a job that already has a folder here (finished or not) is left to
the sweep. Offline-to-online jobs are not reused (their online phase has its own record).
Each copied folder gets a `reused_from.txt` naming its source.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shiftrl.core.errors import ConfigError

REUSED_FILE = "reused_from.txt"


def _recorded_config(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / "config.json").read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def reusable_run(job: dict[str, Any], sources: Sequence[Path]) -> Path | None:
    """A finished run folder of `job` with exactly its configuration, in one of `sources`."""
    from shiftrl.bench.worker import is_finished, job_config

    if job["cell"].get("online"):
        return None
    wanted = json.loads(json.dumps(job_config(job).to_json()))
    for source in sources:
        run_dir = source / job["dir"]
        if _recorded_config(run_dir) == wanted and is_finished(run_dir, job["budget"]["steps"]):
            return run_dir
    return None


def reuse_finished_runs(
    jobs: Sequence[Any], study_dir: Path, sources: Sequence[str | Path]
) -> list[str]:
    """Copy into `study_dir` the finished runs of `sources` that `jobs` would repeat; the
    ids of the jobs so filled."""
    dirs = [Path(s) for s in sources]
    for d in dirs:
        if not d.is_dir():
            raise ConfigError(f"--reuse {d}: no such study folder")
        if d.resolve() == study_dir.resolve():
            raise ConfigError(f"--reuse {d}: that is the study folder itself")
    reused = []
    for job in jobs:
        record = job.to_json()
        target = study_dir / record["dir"]
        if target.exists():
            continue  # this study's own run (finished or to resume): never replaced
        found = reusable_run(record, dirs)
        if found is None:
            continue
        tmp = target.with_name(f".{target.name}.reuse.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(found, tmp, ignore=shutil.ignore_patterns("*.lock"))
        (tmp / REUSED_FILE).write_text(f"{found.resolve()}\n")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(target)
        log = found.parent.parent / "logs" / f"{record['dir']}.log"
        own_log = study_dir / "logs" / f"{record['dir']}.log"
        if log.is_file() and not own_log.exists():
            own_log.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(log, own_log)
        reused.append(job.id)
    return reused
