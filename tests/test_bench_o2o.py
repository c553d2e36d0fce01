"""The SPOT, SSAR and offline-to-online suites: every job's config builds under both profiles
with the add-ons' own steps scaled to the budget, bad budgets and online phases fail when
planned, and a tiny offline-to-online suite runs end to end (offline, then online), resumes,
skips what is finished and reports offline -> online scores and the regret."""

from __future__ import annotations

import dataclasses
import json

import pytest

from shiftrl.addons import ADDONS
from shiftrl.addons.spot import preset_lambda
from shiftrl.addons.ssar import preset_settings
from shiftrl.bench.report import write_report
from shiftrl.bench.runner import plan_jobs, run_suite
from shiftrl.bench.suites import (
    PROFILES,
    Budget,
    Cell,
    Learner,
    Online,
    OnlineBudget,
    Suite,
    get_suite,
)
from shiftrl.bench.worker import job_config, run_job
from shiftrl.core.errors import ConfigError

# SPOT's VAE pretrains its official 1e5 steps under every budget; SSAR's steps scale
ADDON_STEPS = {
    "quick": {"spot": {"pretrain_steps": 100_000}, "ssar": {"iql_steps": 100_000, "update_period": 5000, "beta_lr_steps": 100_000}},
    "paper": {"spot": {"pretrain_steps": 100_000}, "ssar": {"iql_steps": 1_000_000, "update_period": 50_000, "beta_lr_steps": 1_000_000}},
}  # fmt: skip


def _configs(suite: str, profile: str):
    return [(job, job_config(job.to_json())) for job in plan_jobs(suite, profile, seeds=(0,))]


@pytest.mark.parametrize("profile", PROFILES)
def test_spot_suite_configs(profile):
    jobs = _configs("spot", profile)
    assert len(jobs) == 18
    steps = get_suite("spot").budget(profile).steps
    for job, config in jobs:
        assert config.algo == "td3bc" and config.steps == steps
        if job.cell.column == "TD3+BC":
            assert config.preset is None and config.addons == ()
            continue
        assert job.cell.column == "SPOT" and config.preset == "spot"
        assert config.learner.bc_weight == 0 and config.learner.actor_dropout == 0.1
        (spot,) = config.addons
        assert spot["name"] == "spot" and spot["lam"] == preset_lambda(job.cell.target)
        assert spot["pretrain_steps"] == ADDON_STEPS[profile]["spot"]["pretrain_steps"]
    lams = {j.cell.row: c.addons[0]["lam"] for j, c in jobs if c.addons}
    assert lams["hopper-medium"] == 0.1 and lams["halfcheetah-medium-expert"] == 1.0
    # the paper profile is the add-on's own (the papers') step counts
    assert ADDONS["spot"]().pretrain_steps == ADDON_STEPS["paper"]["spot"]["pretrain_steps"]


@pytest.mark.parametrize("profile", PROFILES)
def test_ssar_suite_configs(profile):
    jobs = _configs("ssar", profile)
    # 9 rows x (TD3+BC, TD3+BC (LayerNorm), +SSAR, +SSAR uniform, CQL, ...) + the 3
    # medium rows' trust control
    assert len(jobs) == 66
    for job, config in jobs:
        backbone = "cql" if job.cell.column.startswith("CQL") else "td3bc"
        assert config.algo == backbone
        if job.cell.column == "TD3+BC (LayerNorm)":  # SSAR's backbone, without SSAR
            assert config.addons == () and config.preset == "ssar"
            assert config.learner.critic_layer_norm
            continue
        if "+SSAR" not in job.cell.column:
            assert config.addons == () and config.preset in (None, "default")
            assert not config.learner.critic_layer_norm
            continue
        assert config.preset == "ssar" and config.learner.critic_layer_norm
        (ssar,) = config.addons
        uniform = job.cell.column.endswith(" uniform")  # the control: beta's batch mean
        assert ssar["beta_form"] == ("uniform" if uniform else "state")
        official = preset_settings(backbone, job.cell.target)
        if job.cell.column == "TD3+BC+SSAR top-half trust":  # the median-return trust
            assert official["select"] == "traj" and job.cell.row.endswith("-medium")
            assert ssar["trust_score"] is None and ssar["trust_return"] is None
            official = {k: v for k, v in official.items() if k != "trust_score"}
        assert official and {k: ssar[k] for k in official} == official
        for key, value in ADDON_STEPS[profile]["ssar"].items():
            assert ssar[key] == value
    columns = {"TD3+BC", "TD3+BC (LayerNorm)", "TD3+BC+SSAR", "TD3+BC+SSAR uniform"}
    columns |= {"CQL", "CQL+SSAR", "CQL+SSAR uniform", "TD3+BC+SSAR top-half trust"}
    assert {j.cell.column for j, _ in jobs} == columns
    assert get_suite("ssar").layout.arrows == {
        "TD3+BC (LayerNorm)": "TD3+BC",
        "TD3+BC+SSAR": "TD3+BC (LayerNorm)",
        "TD3+BC+SSAR top-half trust": "TD3+BC (LayerNorm)",
        "CQL+SSAR": "CQL",
        "TD3+BC+SSAR uniform": "TD3+BC+SSAR",
        "CQL+SSAR uniform": "CQL+SSAR",
    }
    ssar = ADDONS["ssar"]()
    assert (ssar.iql_steps, ssar.update_period, ssar.beta_lr_steps) == (1_000_000, 50_000, 10**6)


def test_o2o_suite_online_phases():
    from shiftrl.bench.worker import online_plan

    suite = get_suite("o2o")
    assert not suite.placeholder and len(suite.cells) == 9 * 4 + 3 * 4
    plans = {
        p: {j.cell.name: online_plan(j.to_json()) for j in plan_jobs(suite, p, seeds=(0,))}
        for p in PROFILES
    }
    paper, quick = plans["paper"], plans["quick"]
    assert paper["hopper-medium.iql"]["online_steps"] == 1_000_000
    assert paper["hopper-medium.spot"]["online_steps"] == 1_000_000
    assert paper["hopper-medium.ssar-cql"]["online_steps"] == 250_000
    assert paper["hopper-medium.ssar-td3bc"]["warmup"] == 5000
    assert {p["online_steps"] for p in quick.values()} == {50_000}
    cross = quick["walker2d-mass-2.0-medium.spot.to-base"]
    assert cross["env_id"] == "shiftrl/walker2d-base-v0"
    half, ssar = (
        quick[f"hopper-mass-2.0-medium.{c}.to-base"] for c in ("td3bc-half", "ssar-td3bc")
    )
    assert (half["replay"], half["env_id"]) == ("half", "shiftrl/hopper-base-v0")
    # SSAR's replay is the add-on's own ("part"), chosen when the run is fine-tuned
    assert (ssar["replay"], ssar["warmup"]) == (None, 5000)
    assert paper["hopper-mass-2.0-medium.ssar-td3bc.to-base"]["online_steps"] == 250_000
    job = next(j for j in plan_jobs(suite, "quick", (0,)) if j.cell.name.endswith("spot.to-base"))
    config = job_config(job.to_json())
    assert config.dataset == "hopper-mass-2.0/medium-v0"
    assert config.addons[0]["pretrain_steps"] == 100_000


# ---------------------------------------------------------------------------------------
# Budgets and online phases that are wrong fail when the jobs are planned
# ---------------------------------------------------------------------------------------
SMOKE_CELL = get_suite("smoke").cells[1]  # td3bc on pointreach/mixed-v0


def _suite(cells, **budget) -> Suite:
    quick = dataclasses.replace(get_suite("smoke").profiles["quick"], seeds=(0,), **budget)
    return Suite(
        name="t", description="", cells=tuple(cells), profiles=dict.fromkeys(PROFILES, quick)
    )


def test_budget_addon_settings_apply_only_where_the_addon_is():
    spot = dataclasses.replace(SMOKE_CELL, name="spot", learner=Learner("spot"))
    jobs = plan_jobs(_suite([SMOKE_CELL, spot], addon_settings={"spot": {"pretrain_steps": 7}}))
    plain, with_spot = (job_config(j.to_json()) for j in jobs)
    assert plain.addons == () and with_spot.addons[0]["pretrain_steps"] == 7
    # a cell's own override wins over the budget's
    own = dataclasses.replace(spot, learner=Learner("spot", overrides={"spot.pretrain_steps": 3}))
    (job,) = plan_jobs(_suite([own], addon_settings={"spot": {"pretrain_steps": 7}}))
    assert job_config(job.to_json()).addons[0]["pretrain_steps"] == 3


@pytest.mark.parametrize(
    "budget, cell, message",
    [
        ({"addon_settings": {"spot": {"pretrain_step": 5}}}, {}, "unknown setting 'pretrain_step' for add-on spot"),
        ({"addon_settings": {"spotty": {"lam": 1.0}}}, {}, "unknown add-on 'spotty'"),
        ({}, {"online": Online(steps=1500)}, "multiples of steps_per_iter (1,000)"),
        ({}, {"online": Online(steps=1000, replay="most")}, "online replay must be one of"),
        ({}, {"online": Online(steps=1000, warmup=1000)}, "online warmup must be in"),
        ({}, {"online": Online(steps=1000), "learner": Learner("td3bc", addons=({"name": "dara"},))}, "add-on dara has no online phase"),
        ({"online": OnlineBudget(eval_every=700)}, {"online": Online(steps=1000)}, "online eval_every (700)"),
    ],
)  # fmt: skip
def test_bad_budgets_and_online_phases_fail_when_planned(budget, cell, message):
    suite = _suite([dataclasses.replace(SMOKE_CELL, **cell)], **budget)
    with pytest.raises(ConfigError, match="suite 't', cell 'pointreach-mixed.td3bc'") as e:
        plan_jobs(suite)
    assert message in str(e.value)


def test_suite_without_cells_has_no_jobs():
    with pytest.raises(ConfigError, match="suite 't' has no jobs yet"):
        plan_jobs(_suite([]))


def test_budget_and_cell_json_round_trip():
    budget = get_suite("o2o").budget("quick")
    assert Budget.from_json(json.loads(json.dumps(budget.to_json()))) == budget
    cell = get_suite("o2o").cells[2]
    assert Cell.from_json(json.loads(json.dumps(cell.to_json()))) == cell
    assert "online" not in SMOKE_CELL.to_json()  # offline cells record what they did before
    assert "spot.pretrain_steps" not in get_suite("spot").budget("quick").describe()
    assert "ssar.beta_lr_steps=100,000" in get_suite("ssar").budget("quick").describe()


# ---------------------------------------------------------------------------------------
# A tiny offline-to-online suite end to end
# ---------------------------------------------------------------------------------------
TINY_O2O = Suite(
    name="tiny-o2o",
    description="TD3+BC on the toy reaching data, then fine-tuned online",
    cells=(dataclasses.replace(SMOKE_CELL, online=Online(steps=5000)),),
    profiles=dict.fromkeys(
        PROFILES,
        dataclasses.replace(
            get_suite("smoke").profiles["quick"],
            seeds=(0,),
            online=OnlineBudget(steps=1000, eval_every=500, eval_episodes=5, steps_per_iter=500),
        ),
    ),
)
JOB = "pointreach-mixed.td3bc/seed0"


@pytest.fixture(scope="module")
def o2o_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("o2o") / "tiny-o2o"
    lines: list[str] = []
    result = run_suite(TINY_O2O, out=out, workers=1, progress=False, echo=lines.append)
    return result, lines


def test_o2o_job_runs_offline_then_online(o2o_study):
    result, lines = o2o_study
    (state,) = result.states
    assert state.status == "done", state.message
    assert lines[0].startswith(f"[done] {JOB}: final ")
    run_dir = result.dir / JOB
    offline = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in offline] == [100, 200]
    online = [
        json.loads(x) for x in (run_dir / "online" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in online] == [500, 1000]
    ft = json.loads((run_dir / "online" / "finetune.json").read_text())
    assert (
        ft["env"] == "shiftrl/PointReach-v0" and ft["score_after"] == online[-1]["normalized_score"]
    )
    assert state.final == ft["score_after"] and state.step == 1200
    study = json.loads((result.dir / "study.json").read_text())
    assert (
        study["cells"][0]["online"]["steps"] == 5000 and study["budget"]["online"]["steps"] == 1000
    )

    # a second invocation finds both phases finished and starts nothing
    again = run_suite(TINY_O2O, out=result.dir, progress=False)
    assert [(s.status, s.final) for s in again.states] == [("skipped", state.final)]

    # the report: offline -> online and the regret, and the online learning curve
    text = write_report(result.dir, reps=200).read_text()
    lines = text.splitlines()
    o2o = lines.index("### Offline → online score")
    off = f"{offline[-1]['normalized_score']:.1f} ± 0.0"
    on = f"{ft['score_after']:.1f} ± 0.0"
    assert lines[o2o + 2 : o2o + 5] == [
        "| dataset | td3bc |",
        "|---|---|",
        f"| pointreach-mixed | {off} → {on} |",
    ]
    regret = lines.index("### Regret")
    assert lines[regret + 4] == f"| pointreach-mixed | {ft['regret']:.3f} ± 0.000 |"
    assert "## Aggregate metrics (online final score)" in text
    assert "then 1,000 online steps, evaluation every 500 steps with 5 episodes" in text
    assert "![Online learning curves](plots/online/all.png)" in text  # one axis per row
    assert (result.dir / "plots" / "online" / "all.png").stat().st_size > 1000


def test_o2o_online_phase_resumes_and_refuses_another_setting(o2o_study, tmp_path, capsys):
    import shutil

    result, _ = o2o_study
    study = tmp_path / "tiny-o2o"
    shutil.copytree(result.dir, study)
    (job,) = plan_jobs(TINY_O2O)
    online = study / JOB / "online"
    # killed after its last checkpoint, before finetune.json: resumes, the offline run stays
    (online / "finetune.json").unlink()
    offline_metrics = (study / JOB / "metrics.jsonl").read_text()
    res = run_job(job.to_json(), str(study))
    assert res["status"] == "done", res["message"]
    assert res["final"] == result.states[0].final
    assert (online / "finetune.json").exists()
    assert (study / JOB / "metrics.jsonl").read_text() == offline_metrics
    # (in this process pytest captures Python's prints; a pool worker's go to the job's log)
    printed = (study / "logs" / f"{JOB}.log").read_text() + capsys.readouterr().out
    assert "offline phase finished" in printed
    assert "online phase, 1,000 steps (resumed)" in printed

    # an online folder made with other settings is refused with one line
    (online / "finetune.json").unlink()
    meta = json.loads((online / "config.json").read_text())
    meta["online_config"]["eval_every"] = 250
    (online / "config.json").write_text(json.dumps(meta))
    res = run_job(job.to_json(), str(study))
    assert res["status"] == "failed"
    assert "was started with another online phase (eval_every: 250 -> 500)" in res["message"]
