"""MOREC: the dynamics reward's merge and calibration by hand, the selection rules on fixed
candidates, r_D ranking true next states above perturbed ones on a toy system (on the
data and in a held-out region), the filter on the rollout path (candidates, threshold
stops flagged terminal, metrics), and `morec-mopo` / `morec-mobile` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shiftrl.addons import MORECMOPO
from shiftrl.addons.morec import preset_settings
from shiftrl.core.errors import ConfigError
from shiftrl.dynamics.reward import (
    RewardConfig,
    dynamics_reward,
    load_reward,
    merge_logits,
    save_reward,
    select_candidates,
    train_dynamics_reward,
)
from shiftrl.dynamics.reward.evaluate import auc
from shiftrl.learners import LearnerSpec, get_learner

sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731


def test_merge_calibrates_each_snapshot_then_averages_probabilities():
    # three snapshots: expert / learner calibration values; the third is uncalibrated
    expert, learner = jnp.array([2.0, 1.0, -1.0]), jnp.array([-2.0, 0.0, 1.0])
    mask = jnp.array([True, True, False])
    logits = jnp.array([[0.0, 5.0, -9.0], [0.25, 0.5, 0.0], [3.0, 3.0, 3.0]])  # [K=3, B=3]
    got = np.asarray(merge_logits(logits, expert, learner, mask, d_clip=1.0))
    # by hand: clip to [learner, expert], map learner -> -1, expert -> +1
    p = np.array(
        [
            [sigmoid(0.0), sigmoid(1.0), sigmoid(-1.0)],  # (x + 2) / 4 * 2 - 1, clipped
            [sigmoid(-0.5), sigmoid(0.0), sigmoid(-1.0)],  # x * 2 - 1
        ]
    )
    np.testing.assert_allclose(got, -np.log(1.0 - p.mean(0)), rtol=1e-6)
    # range [-log(1 - sigmoid(-1)), -log(1 - sigmoid(1))] = [0.313, 1.313]
    assert (
        abs(-np.log(1 - sigmoid(-1.0)) - 0.3133) < 1e-4
        and abs(-np.log(1 - sigmoid(1.0)) - 1.3133) < 1e-4
    )
    # d_clip caps each snapshot's probability before the mean
    capped = np.asarray(merge_logits(logits, expert, learner, mask, d_clip=0.6))
    np.testing.assert_allclose(capped, -np.log(1.0 - np.minimum(p, 0.6).mean(0)), rtol=1e-6)


def test_selection_rules_on_fixed_candidates():
    scores = jnp.array([[0.4, 1.2], [1.0, 0.3], [0.9, 1.25]])  # [C=3, B=2]
    np.testing.assert_array_equal(
        select_candidates(scores, "select", jax.random.PRNGKey(0)), [1, 2]
    )
    # softmax(r / 0.1): column 0 -> probabilities ~ e^[4, 10, 9] / sum
    draws = jax.vmap(lambda k: select_candidates(scores, "softmax", k, kappa=0.1))(
        jax.random.split(jax.random.PRNGKey(1), 4000)
    )
    want = np.exp(np.array([4.0, 10.0, 9.0]))
    freq = np.bincount(np.asarray(draws[:, 0]), minlength=3) / 4000
    np.testing.assert_allclose(freq, want / want.sum(), atol=0.03)
    # ties for the maximum (saturated r_D) are broken at random, not by the first index
    tied = jnp.array([[1.3, 0.2], [0.5, 0.2], [1.3, 0.2]])
    picks = jax.vmap(lambda k: select_candidates(tied, "select", k))(
        jax.random.split(jax.random.PRNGKey(2), 400)
    )
    assert set(np.asarray(picks[:, 0]).tolist()) == {0, 2}
    assert set(np.asarray(picks[:, 1]).tolist()) == {0, 1, 2}
    with pytest.raises(ConfigError, match="selection rule"):
        select_candidates(scores, "max", jax.random.PRNGKey(0))


def toy_step(s: np.ndarray, a: np.ndarray) -> np.ndarray:
    """A smooth 2-d system with a 1-d action."""
    return 0.9 * s + 0.2 * a * np.array([1.0, -1.0]) + 0.05 * np.sin(3 * s[:, ::-1])


TINY_REWARD = RewardConfig(
    state_encoder=(64, 32),
    delta_encoder=(64, 16),
    discriminator=(64, 64),
    generator=(64, 64),
    iterations=1000,
    snapshot_every=25,
    batch_size=128,
)


@pytest.fixture(scope="module")
def toy_reward():
    """r_D learned on states in [-1, 1]^2 minus the square [-0.4, 0.4]^2 (held out)."""
    rng = np.random.default_rng(0)
    s = rng.uniform(-1, 1, (12_000, 2))
    s = s[np.abs(s).max(1) > 0.4][:4000].astype(np.float32)
    a = rng.uniform(-1, 1, (4000, 1)).astype(np.float32)
    nxt = (toy_step(s, a) + 0.01 * rng.normal(size=s.shape)).astype(np.float32)
    model, report = train_dynamics_reward(s, a, nxt, TINY_REWARD, seed=0)
    return model, report


@pytest.mark.parametrize("region", [(-1.0, 1.0), (-0.4, 0.4)], ids=["data", "held-out"])
def test_dynamics_reward_ranks_true_next_states_above_perturbed(toy_reward, region):
    model, report = toy_reward
    assert report.snapshots == 40 and report.calibrated >= 10, report.calibrated
    rng = np.random.default_rng(1)
    s = rng.uniform(*region, (500, 2)).astype(np.float32)
    a = rng.uniform(-1, 1, (500, 1)).astype(np.float32)
    true = toy_step(s, a).astype(np.float32)
    offset = rng.normal(size=true.shape)
    offset *= 0.2 / np.linalg.norm(offset, axis=1, keepdims=True)  # |s' - s| is ~0.1-0.3
    r_true = np.asarray(dynamics_reward(model, s, a, true))
    r_off = np.asarray(dynamics_reward(model, s, a, (true + offset).astype(np.float32)))
    assert auc(r_true, r_off) >= 0.9, auc(r_true, r_off)
    assert r_true.min() >= 0.31 and r_true.max() <= 1.32


def test_dynamics_reward_round_trips(toy_reward, tmp_path):
    model, _ = toy_reward
    save_reward(model, tmp_path / "r", {"note": "x"})
    loaded, record = load_reward(tmp_path / "r")
    x = np.zeros((3, 2), np.float32)
    a = np.zeros((3, 1), np.float32)
    np.testing.assert_allclose(
        dynamics_reward(loaded, x, a, x + 0.1), dynamics_reward(model, x, a, x + 0.1), rtol=1e-6
    )
    assert record == {"note": "x"} and loaded.config == model.config


def test_filter_picks_the_candidate_the_reward_prefers_and_stops_below_threshold(toy_reward):
    """On the rollout path (MOPO's model_step hook): a hand-made ensemble whose two elites
        predict the true toy step and a wrong one; "select" takes the true one every time and
        no rollout ends (r_D of the true step is above 0.6); with a threshold above r_D's range
    every row stops."""
    from shiftrl.addons.rollouts import Prepared
    from shiftrl.dynamics.ensemble import DynamicsModel, EnsembleConfig, init_params

    reward, _ = toy_reward
    config = EnsembleConfig(members=2, elites=2, hidden=(4,))
    params = jax.tree.map(jnp.zeros_like, init_params(config, 2, 1, jax.random.PRNGKey(0)))
    # zero weights: each member predicts its bias, a constant delta (member 0: +0.3, member 1: 0)
    last = params["layers"][-1]
    last["b"] = jnp.array(
        [[0.3, 0.3, 0.0, -30.0, -30.0, -30.0], [0.0, 0.0, 0.0, -30.0, -30.0, -30.0]]
    )
    params["min_logvar"] = jnp.full(3, -40.0)
    model = DynamicsModel(params, jnp.zeros(3), jnp.ones(3), jnp.array([0, 1], jnp.int32),
                          jnp.zeros(2), config, 2, 1)  # fmt: skip
    # at s = 0.6 (data region), a = 0: the true delta is -0.06 + 0.05 sin(1.8) ~ -0.011 per dim,
    # so "delta 0" (member 1) is right and "delta 0.3" (member 0) is wrong
    filt = MORECMOPO(selection="select", resamples=1, threshold=0.6, horizon=3, rollout_batch=4,
                     retain_epochs=1, penalty=0.0)  # fmt: skip
    object.__setattr__(filt, "_prepared", Prepared(model, np.zeros(2, np.float32),
                       np.ones(2, np.float32), np.zeros(1, np.float32), np.ones(1, np.float32),
                       1.0, 0.0, "never", {}))  # fmt: skip
    state = {"model": model, "reward_model": reward}
    obs = jnp.full((4, 2), 0.6)
    act = jnp.zeros((4, 1))
    strict = MORECMOPO(selection="select", resamples=1, threshold=1.4)  # above r_D's maximum
    object.__setattr__(strict, "_prepared", filt.prepared)

    @jax.jit
    def both(state, key):
        return filt.model_step(state, obs, act, key), strict.model_step(state, obs, act, key)

    (nxt, rew, unc, stop, info), strict_out = both(state, jax.random.PRNGKey(0))
    np.testing.assert_allclose(np.asarray(nxt), 0.6, atol=1e-4)  # member 1's candidate
    assert not np.asarray(stop).any() and np.all(np.asarray(info["dynamics_reward"]) >= 0.6)
    np.testing.assert_array_equal(np.asarray(info["filter_stop"]), 0.0)
    assert np.asarray(strict_out[3]).all()  # every chosen r_D is below 1.4: all rollouts end
    np.testing.assert_array_equal(np.asarray(strict_out[4]["filter_stop"]), 1.0)


def test_presets_and_checks():
    assert preset_settings("morec-mopo", "hopper/medium-v0") == {
        "penalty": 15.0,
        "selection": "softmax",
    }
    assert preset_settings("morec-mopo", "halfcheetah/medium-v0")["selection"] == "select"
    assert preset_settings("morec-mobile", "walker2d/medium-replay-v0") == {
        "beta": 0.1,
        "real_ratio": 0.05,
    }
    assert MORECMOPO().horizon == 100 and MORECMOPO().rollout_batch == 2000
    sac = get_learner("sac")(get_learner("sac").Config(), LearnerSpec(3, 1, 100))
    with pytest.raises(ConfigError, match="selection"):
        MORECMOPO(selection="best").bind(sac)


def test_neorl_presets_and_fixed_temperatures_reach_the_run_config():
    """The released NeoRL rows (Hopper-v3-H: lambda 20, real ratio 0.5, alpha fixed) and the
    MOBILE gym configs that fix alpha at 0.2 arrive in the run config a recipe builds."""
    from shiftrl.training.config import make_config

    config = make_config("morec-mopo", dataset="hopper/neorl-high-v0")
    record = config.addons[0]
    assert (record["penalty"], record["selection"], record["real_ratio"]) == (20.0, "select", 0.5)
    assert record["state_clip"] == 1e6  # NeoRL states carry the x-position
    assert not config.learner.auto_entropy and config.learner.alpha_multiplier == 0.2
    sac = get_learner("sac")(config.learner, LearnerSpec(3, 1, 100))
    state = sac.init(jax.random.PRNGKey(0))
    assert float(sac.alpha(state)) == pytest.approx(0.2)

    mobile = make_config("mobile", dataset="walker2d/neorl-high-v0")
    assert (mobile.addons[0]["horizon"], mobile.addons[0]["beta"]) == (1, 2.5)
    assert mobile.addons[0]["real_ratio"] == 0.5 and mobile.learner.backup_entropy
    hopper = make_config("mobile", dataset="hopper/neorl-high-v0").learner
    assert hopper.auto_entropy  # the NeoRL hopper `auto-alpha` key never reached argparse
    gym = make_config("mobile", dataset="hopper/medium-v0").learner
    assert (gym.auto_entropy, gym.alpha_multiplier, gym.backup_entropy) == (False, 0.2, False)
    assert make_config("mobile", dataset="walker2d/medium-v0").learner.auto_entropy
    mobile_hopper = make_config("morec-mobile", dataset="hopper/neorl-high-v0")
    assert mobile_hopper.learner.alpha_multiplier == 0.1 and mobile_hopper.addons[0]["beta"] == 2.5
    assert make_config("morec-mopo", dataset="hopper/medium-v0").addons[0]["state_clip"] == 25.0
    random = make_config("morec-mobile", dataset="hopper/random-v0").learner
    assert not random.backup_entropy and random.auto_entropy  # hopper-random's backup


TINY_MOREC_RUN = {
    "hidden": (32, 32),
    "batch_size": 64,
    "eval_every": 40,
    "eval_episodes": 2,
    "morec-mopo.rollout_batch": 32,
    "morec-mopo.rollout_every": 20,
    "morec-mopo.horizon": 5,
    "morec-mopo.model_hidden": (16,),
    "morec-mopo.model_members": 3,
    "morec-mopo.model_elites": 2,
    "morec-mopo.model_max_epochs": 3,
}
"""Tiny MOREC-MOPO settings on PointReach: the ensemble is test_mopo's (cached once)."""


def test_morec_mopo_trains_end_to_end_from_the_cli(point_reach_data, tmp_path):
    """`shiftrl dynamics-reward train / eval`, then `shiftrl train --algo morec-mopo` with that
    reward: the ensemble (test_mopo's settings: reused from the cache), then SAC on real +
    filtered model rows."""
    from typer.testing import CliRunner

    import shiftrl
    from shiftrl.cli import app
    from shiftrl.data.io import save_dataset

    data = tmp_path / "pr.npz"
    save_dataset(point_reach_data, data)
    reward_dir = tmp_path / "reward"
    sizes = ["state_encoder=16,64", "delta_encoder=16,16", "discriminator=16", "generator=16"]
    args = ["dynamics-reward", "train", str(data), "--out", str(reward_dir), "--iterations", "100"]
    args += ["--no-progress", "--no-cache", "--set", "snapshot_every=50"]
    for item in sizes:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "of 2 snapshots calibrated" in result.output
    evaluated = CliRunner().invoke(
        app, ["dynamics-reward", "eval", str(reward_dir), "--dataset", str(data), "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert len(json.loads(evaluated.output)["perturbations"]) == 3
    settings = {"morec-mopo.reward_dir": str(reward_dir), **TINY_MOREC_RUN}
    args = ["train", "--algo", "morec-mopo", "--dataset", str(data), "--steps", "40"]
    args += ["--out", str(tmp_path / "run"), "--no-progress"]
    for k, v in settings.items():
        args += ["--set", f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    row = rows[-1]
    key = "addon/morec-mopo/"
    assert row[key + "buffer_size"] > 0 and np.isfinite(row["critic/q"])
    assert 0.3 <= row[key + "dynamics_reward"] <= 1.32
    assert 0.0 <= row[key + "filter_ended"] <= 1.0
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert recorded["addons"][0]["name"] == "morec-mopo"
    policy = shiftrl.load_policy(tmp_path / "run")  # the checkpoint restores into init's state
    assert policy.act(np.zeros((1, point_reach_data.obs_dim), np.float32)).shape == (1, 1)
    # a run without reward_dir restores into a template shaped as the reward it would learn
    from shiftrl.addons.morec import template_reward

    same = MORECMOPO(reward_hidden=(16,), reward_iterations=100, reward_snapshot_every=50)
    spec = LearnerSpec(point_reach_data.obs_dim, point_reach_data.act_dim, 100)
    template = template_reward(same.reward_config, spec, jax.random.PRNGKey(0))
    loaded, _ = load_reward(reward_dir)
    assert template.config == loaded.config
    shapes = lambda tree: [x.shape for x in jax.tree.leaves(tree)]  # noqa: E731
    assert shapes(template) == shapes(loaded)


def test_morec_mopo_learns_its_reward_once_and_resumes_from_a_kill(point_reach_data, tmp_path):
    """No reward_dir: the first start learns the dynamics reward (and caches it), models.json
    records both learned models with their cost; killed after the first evaluation, the
    resumed run takes the reward from the cache (nothing retrained), restores the policy
    phase from the checkpoint and goes on filtering with the same reward."""
    from shiftrl import train
    from shiftrl.dynamics.reward.store import MODEL_FILE
    from shiftrl.dynamics.reward.store import cache_root as reward_cache
    from shiftrl.envs.toy import POINT_REACH_ID
    from tests.conftest import Interrupt, stop_at

    overrides = {
        **TINY_MOREC_RUN,
        "morec-mopo.reward_hidden": (16,),
        "morec-mopo.reward_iterations": 100,
        "morec-mopo.reward_snapshot_every": 50,
        "morec-mopo.reward_seed": 7,  # a key no other test caches
    }
    common = dict(steps=80, eval_envs=[POINT_REACH_ID], overrides=overrides, progress=False)
    with pytest.raises(Interrupt):
        train(
            "morec-mopo", point_reach_data, out=tmp_path / "run", callbacks=[stop_at(40)], **common
        )
    models = json.loads((tmp_path / "run" / "models.json").read_text())["morec-mopo"]
    learned = models["dynamics_reward"]
    assert not learned["reused"] and learned["iterations"] == 100 and learned["snapshots"] == 2
    assert learned["seconds"] > 0 and "epochs" in json.dumps(models["dynamics"])
    saved = Path(learned["cache_dir"]) / MODEL_FILE
    stamp = saved.stat().st_mtime_ns
    cached = sorted(p.name for p in reward_cache().iterdir())

    run = train("morec-mopo", point_reach_data, out=tmp_path / "run", resume=True, **common)
    assert sorted(p.name for p in reward_cache().iterdir()) == cached
    assert saved.stat().st_mtime_ns == stamp
    assert [r["step"] for r in run.rows] == [40, 80]
    # the record of the first start is kept (a resume reuses, it does not learn)
    again = json.loads((tmp_path / "run" / "models.json").read_text())["morec-mopo"]
    assert again["dynamics_reward"] == learned
    row = run.rows[-1]
    assert 0.3 <= row["addon/morec-mopo/dynamics_reward"] <= 1.32
    assert np.isfinite(row["critic/q"])


def test_demo_names_are_checked():
    from typer.testing import CliRunner

    from shiftrl.cli import app

    result = CliRunner().invoke(app, ["demo", "refrigerator"])
    assert result.exit_code != 0 and "choose offline or morec" in result.output


def test_morec_mobile_recipe_composes_mobile_with_the_filter():
    from shiftrl.addons import MOBILE, build_addons
    from shiftrl.addons.morec import TransitionFilter
    from shiftrl.training.config import make_config

    config = make_config("morec-mobile", dataset="hopper/medium-replay-v0")
    assert config.algo == "sac" and config.preset == "morec-mobile"
    assert config.learner.backup_entropy and config.learner.clip_target_at_zero
    assert config.learner.actor_on_target_critics  # the released MOBILE fork's actor loss
    record = config.addons[0]
    assert (record["name"], record["beta"], record["penalty"], record["horizon"]) == (
        "morec-mobile", 0.5, 0.0, 100,
    )  # fmt: skip
    (addon,) = build_addons(config.addons)
    assert isinstance(addon, MOBILE) and isinstance(addon, TransitionFilter)
    assert addon.selection == "softmax" and addon.use_every == 4


def test_filter_lowers_rollout_error_on_the_refrigerator():
    """MOREC's synthetic task, small: r_D learned from the behaviour controller's data only
    (temperatures >= -3 C, power <= 3), then rollouts under the test controller, which
    holds about -7 C. Each step offers three candidates, the true next temperature and the
    true one +- 2 C (a model that is right, and two that extrapolate wrong); choosing by r_D
    must track the true trajectory better than choosing at random. (The learned ensemble's
    own candidates are the demo's: `shiftrl demo morec`, docs/benchmarks/morec.md.)"""
    from shiftrl.demo_morec import QUICK
    from shiftrl.envs import refrigerator as fridge

    data = fridge.offline_data(QUICK.episodes, QUICK.steps, seed=0)
    test = fridge.run(fridge.evaluation_controller, 200, seed=1000)
    assert test["temperature"].min() < data["obs"].min() - 3  # the test visits unseen states
    reward, _ = train_dynamics_reward(
        data["obs"], data["action"], data["next_obs"], QUICK.reward, seed=0, z=data["door"]
    )
    offsets = jnp.array([0.0, 2.0, -2.0])

    @jax.jit
    def rollout(start, doors, key, use_reward):
        def step(temp, inputs):
            door, k = inputs
            power = jnp.clip(0.5 * (temp + 8.0), 0.0, fridge.U_MAX)  # the test controller
            t = temp - power
            true = t - jnp.where(door > 0.5, fridge.K_OPEN, fridge.K_CLOSED) * (t - 15.0)
            cands = true + offsets  # [3]
            scores = dynamics_reward(
                reward, temp[None, None], power[None, None], cands[:, None], z=door[None, None]
            )
            by_reward = select_candidates(scores[:, None], "select", k)[0]
            pick = jnp.where(use_reward, by_reward, jax.random.randint(k, (), 0, 3))
            return cands[pick], cands[pick]

        keys = jax.random.split(key, doors.shape[0])
        return jax.lax.scan(step, start, (doors, keys))[1]

    horizon, errors = 30, {True: [], False: []}
    for t0 in range(0, 200 - horizon, 10):
        truth = test["temperature"][t0 + 1 : t0 + 1 + horizon]
        for use_reward in (True, False):
            pred = rollout(test["temperature"][t0], test["door"][t0 : t0 + horizon],
                           jax.random.PRNGKey(t0), use_reward)  # fmt: skip
            errors[use_reward].append(np.abs(np.asarray(pred) - truth))
    filtered, random_pick = np.mean(errors[True]), np.mean(errors[False])
    print(f"refrigerator MAE: r_D choice {filtered:.3f}, random choice {random_pick:.3f}")
    assert filtered < 0.5 * random_pick, (filtered, random_pick)
