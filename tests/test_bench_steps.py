"""`shiftrl bench SUITE --steps N`: a profile scaled to N gradient steps (`Budget.scaled`),
its evaluation schedule and add-on step counts in proportion, as a study of its own
(`quick-20k`); planned on the method suites without training, and the smoke suite end to
end through the CLI."""

from __future__ import annotations

import json

import pytest

from shiftrl.bench.results import load_study
from shiftrl.bench.runner import plan_jobs
from shiftrl.bench.suites import Budget, OnlineBudget, get_suite
from shiftrl.bench.suites.spec import parse_steps, profile_label, steps_label
from shiftrl.bench.worker import job_config
from shiftrl.core.errors import ConfigError
from tests.test_bench_cli import one_error_line, run


def test_ssar_quick_at_20k_steps_plans_scaled_jobs():
    jobs = plan_jobs("ssar", "quick", seeds=(0,), only="hopper-medium.td3bc*", steps=20_000)
    assert {j.id for j in jobs} == {
        "hopper-medium.td3bc/seed0",
        "hopper-medium.td3bc-ln/seed0",
        "hopper-medium.td3bc-ssar/seed0",
        "hopper-medium.td3bc-ssar-uniform/seed0",
        "hopper-medium.td3bc-ssar-top-half/seed0",
    }
    for job in jobs:
        assert job.profile == "quick-20k" and job.to_json()["profile"] == "quick-20k"
        b = job.budget
        assert (b.steps, b.eval_every, b.eval_episodes, b.seeds) == (20_000, 2000, 10, (0, 1, 2))
        assert b.addon_settings == {
            "ssar": {"iql_steps": 20_000, "update_period": 1000, "beta_lr_steps": 20_000}
        }
        assert b.note.endswith("; scaled to 20,000 steps from the quick budget (100,000)")
        assert b.describe().startswith(
            "20,000 gradient steps, evaluation every 2,000 steps with 10 episodes"
        )
        assert (
            "ssar.iql_steps=20,000, ssar.update_period=1,000, ssar.beta_lr_steps=20,000"
            in b.describe()
        )
        config = job_config(job.to_json())
        assert (config.steps, config.eval_every, config.eval_episodes) == (20_000, 2000, 10)
    by_id = {j.id.split("/")[0].split(".")[1]: job_config(j.to_json()) for j in jobs}
    # the backbone control: SSAR's LayerNorm critics, no add-on; TD3+BC has neither
    assert by_id["td3bc-ln"].addons == () and by_id["td3bc-ln"].learner.critic_layer_norm
    assert not by_id["td3bc"].learner.critic_layer_norm
    assert by_id["td3bc-ssar"].learner.critic_layer_norm
    ssar = by_id["td3bc-ssar"].addons
    assert [(a["name"], a["iql_steps"], a["update_period"]) for a in ssar] == [
        ("ssar", 20_000, 1000)
    ]
    assert ssar[0]["top_trajectories"] == 50  # not a step count: left alone
    assert job_config(jobs[0].to_json()).addons == ()
    # the label alone gives the same jobs (what study.json records and reports reproduce)
    again = plan_jobs("ssar", "quick-20k", seeds=(0,), only="hopper-medium.td3bc*")
    assert [j.to_json() for j in again] == [j.to_json() for j in jobs]


def test_spot_quick_scaled_up_and_down():
    spot = get_suite("spot")
    # the VAE pretrains SPOT's official 1e5 steps whatever the learner's steps
    for steps, label, every, pretrain in [
        (5000, "quick-5k", 500, 100_000),
        (250_000, "quick-250k", 25_000, 100_000),
    ]:
        (job,) = plan_jobs(spot, "quick", seeds=(1,), only="hopper-medium.spot", steps=steps)
        assert job.profile == label
        config = job_config(job.to_json())
        assert (config.steps, config.eval_every) == (steps, every)
        assert config.addons[0]["name"] == "spot" and config.addons[0]["pretrain_steps"] == pretrain
        assert spot.budget(label) == job.budget
        assert Budget.from_json(job.budget.to_json()) == job.budget
    # the profile's own steps are the profile itself
    assert spot.resolve("quick", 100_000) == ("quick", spot.profiles["quick"])


@pytest.mark.parametrize(
    ("steps", "behavior", "warmup"), [(None, 30_000, 2000), (10_000, 3000, 200)]
)
def test_dara_budgets_keep_bracp_and_bear_phases_in_proportion(steps, behavior, warmup):
    only = ["hopper-medium.bracp.10T", "hopper-medium.bear.10T", "hopper-medium.iql.10T"]
    jobs = plan_jobs("dara", "quick", seeds=(0,), only=only, steps=steps)
    configs = {j.cell.learner.algo: job_config(j.to_json()) for j in jobs}
    assert configs["bracp"].learner.behavior_steps == behavior  # BRAC's 300k of 1M: 30%
    assert configs["bear"].learner.warmup_steps == warmup  # BEAR's 20k of 1M: 2%
    assert "behavior_steps" not in json.dumps(jobs[2].to_json()["cell"])  # IQL untouched
    assert Budget.from_json(jobs[0].budget.to_json()) == jobs[0].budget


def test_planning_builds_the_learners_so_a_phase_too_long_fails_before_the_sweep():
    from dataclasses import replace

    from shiftrl.bench.suites.common import QUICK_100K

    dara = get_suite("dara")
    unscaled = replace(dara, profiles={**dara.profiles, "quick": QUICK_100K})
    with pytest.raises(ConfigError, match=r"hopper-random\.bracp\.10T.*behavior_steps \(300000\)"):
        plan_jobs(unscaled, "quick", seeds=(0,), only="*.bracp.*")


def test_scaled_budget_rules():
    base = Budget(
        steps=100_000,
        eval_every=10_000,
        eval_episodes=10,
        seeds=(0,),
        settings={"batch_size": 256},
        addon_settings={"ssar": {"iql_steps": 100_000, "update_period": 5000, "top": 50}},
        online=OnlineBudget(steps=50_000),
        note="declared",
    )
    small = base.scaled(3)
    assert (small.steps, small.eval_every) == (3, 1)
    assert small.addon_settings == {"ssar": {"iql_steps": 3, "update_period": 1, "top": 50}}
    assert small.online == base.online and small.settings == base.settings
    assert base.scaled(100_000) is base
    # evaluation interval: in proportion, at least 5 evaluations, a divisor when one is close
    every = {n: base.scaled(n).eval_every for n in (20_000, 30_000, 12_345, 33_333, 1_000_000)}
    assert every == {20_000: 2000, 30_000: 3000, 12_345: 823, 33_333: 2500, 1_000_000: 100_000}
    smoke = get_suite("smoke").profiles["quick"]  # 200 steps, eval every 100
    assert smoke.scaled(20).eval_every == 4 and smoke.scaled(400).eval_every == 80
    for bad in (0, -5, 1.5):
        with pytest.raises(ConfigError, match="--steps must be a positive number"):
            base.scaled(bad)


def test_scaled_labels():
    assert [steps_label(n) for n in (20_000, 1_000_000, 2500, 20)] == ["20k", "1m", "2500", "20"]
    assert [parse_steps(t) for t in ("20k", "1m", "2500")] == [20_000, 1_000_000, 2500]
    assert profile_label("quick", 20_000) == "quick-20k" and profile_label("quick", None) == "quick"
    smoke = get_suite("smoke")
    assert smoke.resolve("quick-20000")[0] == "quick-20k"  # canonical label
    assert smoke.resolve("quick-200") == ("quick", smoke.profiles["quick"])
    assert smoke.profile_name("paper-1m") == "paper" and smoke.profile_name("quick") == "quick"
    with pytest.raises(ConfigError, match="--steps 10 contradicts --profile quick-20k"):
        smoke.resolve("quick-20k", 10)
    with pytest.raises(ConfigError, match="unknown profile 'fast-20k'"):
        smoke.resolve("fast-20k")


def test_smoke_at_20_steps_through_the_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ("bench", "smoke", "--seeds", 0, "--workers", 2, "--no-progress")
    result = run(*args, "--steps", 20)
    assert result.exit_code == 0, result.output
    study = tmp_path / "runs" / "bench" / "smoke-quick-20"
    assert "smoke/quick-20: 2 done -> runs/bench/smoke-quick-20" in result.output
    record = json.loads((study / "study.json").read_text())
    assert record["profile"] == "quick-20"
    assert (record["budget"]["steps"], record["budget"]["eval_every"]) == (20, 4)
    for algo in ("bc", "td3bc"):
        run_dir = study / f"pointreach-mixed.{algo}" / "seed0"
        config = json.loads((run_dir / "config.json").read_text())["config"]
        assert (config["steps"], config["eval_every"]) == (20, 4)
        steps = [
            json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()
        ]
        assert steps == [4, 8, 12, 16, 20]

    # the same budget resumes (here: finds everything finished), by --steps or by label
    for again in (["--steps", 20], ["--profile", "quick-20", "--out", study]):
        result = run(*args, *again)
        assert result.exit_code == 0 and "smoke/quick-20: 2 skipped" in result.output

    # another budget into the same folder: one line, nothing run or recorded
    before = (study / "study.json").read_text()
    line = one_error_line(run(*args, "--steps", 40, "--out", study))
    assert "holds the study 'smoke' (profile quick-20, 20 steps), not quick-40 (40 steps)" in line
    line = one_error_line(run(*args, "--out", study))
    assert "(profile quick-20, 20 steps), not quick (200 steps)" in line
    assert (study / "study.json").read_text() == before

    # reports read the declared scaled budget from study.json
    loaded = load_study(study)
    assert loaded.profile == "quick-20" and loaded.budget == get_suite("smoke").budget("quick-20")
    assert loaded.budget.describe().startswith("20 gradient steps, evaluation every 4 steps")


def test_online_steps_scale_the_online_phases_only():
    o2o = get_suite("o2o")
    label, budget = o2o.resolve("quick", 10_000, 20_000)
    assert label == "quick-10k-online20k" and budget.steps == 10_000
    assert (budget.online.steps, budget.online.eval_every) == (20_000, 4000)  # 10k of 50k
    assert "online phases at 20,000 steps instead of the quick budget's (50,000)" in budget.note
    assert o2o.resolve(label) == (label, budget)  # a study folder's label gives it back
    assert o2o.resolve("quick", online_steps=20_000)[0] == "quick-online20k"
    assert o2o.resolve("quick", online_steps=50_000)[0] == "quick"  # the profile's own
    paper = o2o.resolve("paper", online_steps=20_000)[1]  # cells' own steps -> 20k for all
    assert (paper.online.steps, paper.online.eval_every, paper.steps) == (20_000, 4000, 1_000_000)
    jobs = plan_jobs(o2o, "quick", (0,), "hopper-medium.spot", 10_000, 20_000)
    assert [(j.id, j.profile, j.online_steps) for j in jobs] == [
        ("hopper-medium.spot/seed0", "quick-10k-online20k", 20_000)
    ]
    with pytest.raises(ConfigError, match="--online-steps 5000 contradicts"):
        o2o.resolve(label, online_steps=5000)
    with pytest.raises(ConfigError, match="multiple of 1,000"):
        o2o.resolve("quick", online_steps=1500)
