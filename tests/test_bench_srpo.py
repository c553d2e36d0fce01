"""The SRPO suite: every job's config builds under both profiles with the three datasets
(base, mass-2.0, friction-0.5) giving equal shares of each batch and evaluation in all
three dynamics; and its report, from hand-written run folders with known per-environment
scores, shows the mean over the dynamics and a second table in the base dynamics alone.
No training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shiftrl.addons import build_addons
from shiftrl.bench.report import write_report
from shiftrl.bench.results import load_study
from shiftrl.bench.runner import plan_jobs, write_study
from shiftrl.bench.suites import PROFILES, get_suite
from shiftrl.bench.worker import job_config
from shiftrl.training.loop import batch_counts
from shiftrl.training.run import build_learner

ROBOTS = ("hopper", "walker2d", "halfcheetah")
LEVELS = ("medium", "medium-replay", "medium-expert")
SHIFTS = ("mass-2.0", "friction-0.5")


def _envs(robot: str) -> tuple[str, ...]:
    return tuple(f"shiftrl/{robot}-{s}-v0" for s in ("base", *SHIFTS))


@pytest.mark.parametrize("profile", PROFILES)
def test_srpo_suite_configs(profile):
    suite = get_suite("srpo")
    assert suite.placeholder is None
    budget = suite.budget(profile)
    expected = {"paper": (1_000_000, 5000, 10, 5), "quick": (100_000, 10_000, 10, 3)}
    assert (budget.steps, budget.eval_every, budget.eval_episodes, len(budget.seeds)) == (
        expected[profile]
    )
    # offline model-free cells here; the online block: tests/test_online_context.py
    everything = [j for j in plan_jobs(suite, profile, seeds=(0,)) if not j.cell.online_only]
    maple = [j for j in everything if j.cell.block.startswith("MAPLE")]
    jobs = [j for j in everything if j not in maple]
    assert len(jobs) == 3 * 3 * 3 * 3  # robots x levels x learners x (base, +SRPO, shuffled)
    _check_maple_block(maple, expected[profile])
    assert {j.cell.row for j in jobs} == {f"{r}-{lvl}" for r in ROBOTS for lvl in LEVELS}
    learners = {}
    for job in jobs:
        config = job_config(job.to_json())
        robot, level = job.cell.row.split("-", 1)
        assert config.dataset == f"{robot}/{level}-v0"
        assert config.sources == tuple(f"{robot}-{s}/{level}-v0" for s in SHIFTS)
        assert config.eval_envs == _envs(robot)
        assert (config.steps, config.eval_every, config.eval_episodes) == expected[profile][:3]
        # one third of every batch from each dataset (equal-size datasets: 85 / 86 / 85)
        assert config.source_fraction == pytest.approx(2 / 3)
        for n in (1_000_000, 2_000_000):
            counts = batch_counts(config.batch_size, [n] * 3, config.source_fraction)
            assert sum(counts) == config.batch_size and max(counts) - min(counts) <= 1
        assert batch_counts(256, [10] * 3, config.source_fraction) == (85, 86, 85)
        column = job.cell.column
        base = column.removesuffix(" shuffled").removesuffix("+SRPO")
        assert base in ("CQL", "TD3+BC", "IQL")
        learners.setdefault(base, set()).add((config.algo, config.preset))
        if column == base:
            assert config.addons == ()
        else:
            (srpo,) = config.addons
            assert (srpo["name"], srpo["lam"], srpo["rho"]) == ("srpo", 0.1, 0.5)
            (addon,) = build_addons(config.addons, build_learner(config, 11, 3))
            # the released code's form on raw rewards (SRPO's published numbers)
            assert (addon.lam, addon.rho, addon.form) == (0.1, 0.5, "clipped")
            assert addon.reward_units == "raw"
            shuffled = column.endswith(" shuffled")
            assert addon.labels_from == ("shuffled" if shuffled else "value")
    assert learners == {
        "CQL": {("cql", "default")},
        "TD3+BC": {("td3bc", None)},
        "IQL": {("iql", "locomotion")},
    }
    layout = suite.layout
    assert layout.arrows == {
        "context SAC+SRPO": "context SAC",
        "context SAC+SRPO shuffled": "context SAC+SRPO",
        **{f"{b}+SRPO": b for b in ("CQL", "TD3+BC", "IQL")},
        **{f"{b}+SRPO shuffled": f"{b}+SRPO" for b in ("CQL", "TD3+BC", "IQL")},
        "MAPLE+DARA": "MAPLE",
        "MAPLE+SRPO": "MAPLE",
    }
    assert layout.per_env_tables == {"base dynamics only": tuple(e[0] for e in map(_envs, ROBOTS))}
    assert layout.to_json()["per_env_tables"]["base dynamics only"][0] == "shiftrl/hopper-base-v0"


def _check_maple_block(jobs, expected) -> None:
    """MAPLE, MAPLE+DARA (the released `maple_dara` form) and MAPLE+SRPO on hopper and
    walker2d, medium and medium-replay, with the model-free cells' data and evaluation."""
    assert len(jobs) == 2 * 2 * 3
    assert {j.cell.row for j in jobs} == {f"{r}-{lvl}" for r in ROBOTS[:2] for lvl in LEVELS[:2]}
    for job in jobs:
        config = job_config(job.to_json())
        robot, level = job.cell.row.split("-", 1)
        assert config.algo == "maple" and config.sources == tuple(
            f"{robot}-{s}/{level}-v0" for s in SHIFTS
        )
        assert config.eval_envs == _envs(robot) and config.source_fraction == pytest.approx(2 / 3)
        assert (config.steps, config.eval_every, config.eval_episodes) == expected[:3]
        addons = build_addons(config.addons, build_learner(config, 11, 3))
        model, *rest = addons
        assert (model.name, model.horizon, model.penalty, model.penalty_clip) == (
            "maple-model",
            10,
            0.25,
            40.0,
        )
        assert (model.elite_per, model.model_members, model.model_elites) == ("trajectory", 20, 14)
        names = {a.name: a for a in rest}
        assert {"MAPLE": set(), "MAPLE+DARA": {"dara"}, "MAPLE+SRPO": {"srpo"}}[
            job.cell.column
        ] == set(names)
        if "dara" in names:
            assert (names["dara"].correction, names["dara"].eta) == ("maple_dara", 0.1)
        if "srpo" in names:
            assert (names["srpo"].lam, names["srpo"].rho, names["srpo"].form) == (
                0.1,
                0.5,
                "clipped",
            )


# ---------------------------------------------------------------------------------------
# The report, from fixed run folders
# ---------------------------------------------------------------------------------------
# job id -> per-env scores (base, mass-2.0, friction-0.5) at [50k, 100k] steps
RUNS = {
    "hopper-medium.cql/seed0": [(40, 10, 10), (60, 30, 30)],  # mean 40, base 60
    "hopper-medium.cql/seed1": [(40, 10, 10), (50, 40, 30)],  # mean 40, base 50
    "hopper-medium.cql-srpo/seed0": [(90, 0, 0), (70, 50, 60)],  # mean 60, base 70, best 90
    "hopper-medium.cql-srpo/seed1": [(50, 0, 10), (40, 60, 80)],  # mean 60, base 40
    "walker2d-medium-replay.td3bc/seed0": [(10, 10, 10), (20, 20, 20)],
    "walker2d-medium-replay.td3bc-srpo/seed0": [(10, 10, 10), (15, 30, 30)],  # mean 25, base 15
    "walker2d-medium-replay.td3bc-srpo/seed1": [(10, 10, 10), (None, None, None)],  # unfinished
}
REST = " — |" * 7  # the shuffled-label controls, TD3+BC and IQL: not run here
MAIN_ROW = "| hopper-medium | 40.0 ± 0.0 | 60.0 ± 0.0 ↑ |" + REST
BASE_ROW = "| hopper-medium | 55.0 ± 5.0 | 55.0 ± 15.0 |" + REST
BASE_BEST = "| hopper-medium | 55.0 ± 5.0 | 70.0 ± 20.0 ↑ |" + REST
WALKER = "| walker2d-medium-replay | — | — | — | 20.0 ± 0.0 (1/2) | {} (1/2) | — | — | — | — |"


def _write_run(study: Path, job, scores) -> None:
    run_dir = study / job.id
    run_dir.mkdir(parents=True)
    meta = {"shiftrl_version": "test", "config": job_config(job.to_json()).to_json()}
    (run_dir / "config.json").write_text(json.dumps(meta))
    envs = job.cell.eval_envs
    lines = []
    for step, per_env in zip((50_000, 100_000), scores, strict=True):
        if per_env[0] is None:
            continue  # not evaluated yet
        row = {"step": step, "normalized_score": sum(per_env) / len(per_env)}
        row.update({f"eval/{e}/normalized_score": v for e, v in zip(envs, per_env, strict=True)})
        row.update({f"eval/{e}/return": 10.0 * v for e, v in zip(envs, per_env, strict=True)})
        lines.append(json.dumps(row) + "\n")
    (run_dir / "metrics.jsonl").write_text("".join(lines))


@pytest.fixture(scope="module")
def srpo_study(tmp_path_factory):
    suite = get_suite("srpo")
    study = tmp_path_factory.mktemp("srpo") / "srpo-quick"
    study.mkdir()
    write_study(study, suite, "quick", (0, 1), {}, "local")
    jobs = {j.id: j for j in plan_jobs(suite, "quick", (0, 1))}
    for job_id, scores in RUNS.items():
        _write_run(study, jobs[job_id], scores)
    return study


def _table(lines: list[str], heading: str, start: int = 0) -> list[str]:
    i = lines.index(heading, start)
    while not lines[i].startswith("| dataset |"):
        i += 1
    header = lines[i].split(" | ")
    assert header[1:] == [
        *("CQL", "CQL+SRPO", "CQL+SRPO shuffled"),
        *("TD3+BC", "TD3+BC+SRPO", "TD3+BC+SRPO shuffled"),
        *("IQL", "IQL+SRPO", "IQL+SRPO shuffled |"),
    ]
    return lines[i + 2 : i + 11]


def test_srpo_report_has_a_base_dynamics_table(srpo_study):
    study = load_study(srpo_study)
    assert study.per_env_tables == {
        "base dynamics only": tuple(_envs(r)[0] for r in ROBOTS),
    }
    cell = next(c for c in study.cells if c.cell.name == "hopper-medium.cql-srpo")
    assert cell.runs[0].env_scores["shiftrl/hopper-mass-2.0-v0"] == [0.0, 50.0]
    assert cell.stat("final") == (60.0, 0.0)
    assert cell.in_envs(("shiftrl/hopper-base-v0",)).stat("final") == (55.0, 15.0)
    assert cell.in_envs(("shiftrl/walker2d-base-v0",)).runs == []

    lines = write_report(srpo_study, reps=200).read_text().splitlines()
    assert lines[0] == "# Benchmark report: srpo (profile `quick`)"
    final = _table(lines, "### Final score")
    assert final[0] == MAIN_ROW
    assert final[4] == WALKER.format("25.0 ± 0.0 ↑")
    assert sum(r.count("—") for r in final) == 9 * 9 - 4
    base = _table(lines, "### Final score (base dynamics only)")
    i = lines.index("### Final score (base dynamics only)")
    assert lines[i + 2].startswith("Normalized score in `shiftrl/hopper-base-v0`, `shiftrl/walker")
    assert base[0] == BASE_ROW  # equal means: no arrow
    assert base[4] == WALKER.format("15.0 ± 0.0 ↓")
    assert [r.split(" | ")[0] for r in base] == [r.split(" | ")[0] for r in final]
    best = _table(lines, "### Best score (base dynamics only)")
    assert best[0] == BASE_BEST
    assert "Incomplete suite" not in "\n".join(lines)
    assert "**Runs finished:** 6 of 198." in "\n".join(lines)  # 162 + 24 MAPLE + 12 online


def test_study_without_per_env_tables_still_reads(srpo_study, tmp_path):
    """A study.json written before `per_env_tables` existed: no extra tables, same scores."""
    rec = json.loads((srpo_study / "study.json").read_text())
    del rec["layout"]["per_env_tables"]
    old = tmp_path / "old"
    old.mkdir()
    (old / "study.json").write_text(json.dumps(rec))
    for job_id in RUNS:
        src = srpo_study / job_id
        for name in ("config.json", "metrics.jsonl"):
            (old / job_id / name).parent.mkdir(parents=True, exist_ok=True)
            (old / job_id / name).write_text((src / name).read_text())
    study = load_study(old)
    assert study.per_env_tables == {}
    text = write_report(old, reps=200).read_text()
    assert "base dynamics only" not in text and MAIN_ROW in text
