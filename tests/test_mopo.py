"""MOPO's and MOBILE's model rollouts on the add-on path: with a hand-built ensemble whose prediction is
known, rollouts stop at the environment's termination, rewards carry exactly MOPO's
penalty, batches mix real and MODEL rows in the configured ratio; and `--algo mopo` trains
end to end (dynamics phase, then SAC on real + model data)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shiftrl.addons import MOPO, AddOnContext
from shiftrl.addons.rollouts import Prepared, preset_settings
from shiftrl.core.errors import ConfigError
from shiftrl.core.types import MODEL, SOURCE, TARGET, Batch
from shiftrl.dynamics import EnsembleConfig
from shiftrl.dynamics.ensemble import DynamicsModel, init_params
from shiftrl.learners import LearnerSpec, get_learner

OBS, ACT = 11, 3  # hopper's sizes, so the hopper termination function applies
CONFIG = EnsembleConfig(members=3, elites=2, hidden=(8,))
TINY_LOGVAR, STD = -30.0, 0.1


def known_model(dz=(-0.2, -0.2, -0.2), noisy: bool = True) -> DynamicsModel:
    """Member k predicts delta z = dz[k], delta angle = 0, reward 1 with ~no noise, and (if
    `noisy`) std 0.1 on the other 9 state dimensions (so max_k ||sigma_k|| = 0.3)."""
    params = init_params(CONFIG, OBS, ACT, jax.random.PRNGKey(0))
    params = jax.tree.map(jnp.zeros_like, params)
    out = OBS + 1
    mean_bias = jnp.zeros((CONFIG.members, out)).at[:, 0].set(jnp.asarray(dz)).at[:, -1].set(1.0)
    logvar_bias = jnp.full(out, TINY_LOGVAR)
    if noisy:
        logvar_bias = logvar_bias.at[2:OBS].set(2 * np.log(STD))
    last = params["layers"][-1]
    logvar_bias = jnp.broadcast_to(logvar_bias, mean_bias.shape)
    last["b"] = jnp.concatenate([mean_bias, logvar_bias], axis=-1)
    params["max_logvar"] = jnp.full(out, 0.5)
    params["min_logvar"] = jnp.full(out, -40.0)
    return DynamicsModel(
        params=params,
        input_mean=jnp.zeros(OBS + ACT),
        input_std=jnp.ones(OBS + ACT),
        elites=jnp.array([0, 2], jnp.int32),
        holdout_mse=jnp.zeros(CONFIG.members),
        config=CONFIG,
        obs_dim=OBS,
        act_dim=ACT,
    )


def prepared_mopo(cls=MOPO, **settings) -> MOPO:
    mopo = cls(**settings)
    object.__setattr__(
        mopo,
        "_prepared",
        Prepared(
            model=known_model(),
            obs_mean=np.zeros(OBS, np.float32),
            obs_std=np.ones(OBS, np.float32),
            act_center=np.zeros(ACT, np.float32),
            act_half=np.ones(ACT, np.float32),
            reward_scale=1.0,
            reward_bias=0.0,
            termination="hopper",
            record={},
        ),
    )
    return mopo


@pytest.fixture(scope="module")
def rolled_out():
    """One rollout round of 8 rows x 5 steps from z = 1.25: z goes 1.05, 0.85, 0.65, and
    hopper terminates below 0.7, so each row lives exactly 3 steps."""
    learner = get_learner("sac")(
        get_learner("sac").Config(hidden=(16, 16)), LearnerSpec(OBS, ACT, 100)
    )
    mopo = prepared_mopo(penalty=2.0, horizon=5, rollout_batch=8, retain_epochs=2)
    state = mopo.init(jax.random.PRNGKey(1), learner.spec)
    start = jnp.zeros((8, OBS)).at[:, 0].set(1.25)
    ctx = AddOnContext(learner, learner.init(jax.random.PRNGKey(2)), ({"obs": start},))
    state, metrics = jax.jit(lambda s, k: mopo.rollout(s, ctx, k))(state, jax.random.PRNGKey(3))
    return mopo, state, metrics


def test_rollouts_stop_at_terminations(rolled_out):
    mopo, state, metrics = rolled_out
    assert int(state["size"]) == 8 * 3 and int(state["ptr"]) == 24
    rows = {k: np.asarray(v[:24]) for k, v in state["buffer"].items()}
    # written step-major: step 1 for all rows, then step 2, then step 3
    np.testing.assert_allclose(rows["next_obs"][:, 0], np.repeat([1.05, 0.85, 0.65], 8), atol=1e-4)
    np.testing.assert_array_equal(rows["terminal"], np.repeat([0.0, 0.0, 1.0], 8))
    assert np.all(np.asarray(state["buffer"]["terminal"][24:]) == 0)  # nothing after
    assert float(metrics["rollout_length"]) == 3.0


def soft_bounded_std(raw_logvar: float, max_lv: float = 0.5, min_lv: float = -40.0) -> float:
    """The ensemble's soft clamp, by hand: min + softplus(max - softplus(max - x) - min)."""
    softplus = lambda v: np.log1p(np.exp(v))  # noqa: E731
    logvar = max_lv - softplus(max_lv - raw_logvar)
    return float(np.exp(0.5 * (min_lv + softplus(logvar - min_lv))))


def test_model_rewards_carry_mopo_penalty(rolled_out):
    mopo, state, metrics = rolled_out
    std = soft_bounded_std(2 * np.log(STD))  # 0.1 slightly lowered by the soft upper bound
    tiny = soft_bounded_std(TINY_LOGVAR)
    uncertainty = np.sqrt(9 * std**2 + 3 * tiny**2)  # max over members of ||sigma||_2
    assert abs(uncertainty - 0.3) < 0.01
    rewards = np.asarray(state["buffer"]["reward"][:24])
    np.testing.assert_allclose(rewards, 1.0 - 2.0 * uncertainty, atol=1e-4)
    np.testing.assert_allclose(float(metrics["uncertainty"]), uncertainty, rtol=1e-4)


def test_batches_mix_real_and_model_rows(rolled_out):
    mopo, state, _ = rolled_out
    mopo = prepared_mopo(real_ratio=0.25, horizon=5, rollout_batch=8, retain_epochs=2)
    real = Batch(
        obs=jnp.full((20, OBS), 7.0),
        action=jnp.zeros((20, ACT)),
        reward=jnp.full((20,), 7.0),
        next_obs=jnp.zeros((20, OBS)),
        terminal=jnp.zeros(20),
        domain=jnp.full((20,), TARGET, jnp.int32),
        extras={"other/flag": jnp.ones(20)},
    )
    batch = mopo.transform_batch(state, real, None, jax.random.PRNGKey(4))
    assert batch.size == 20 and batch.extras["other/flag"].shape == (20,)
    np.testing.assert_array_equal(np.asarray(batch.domain), [TARGET] * 5 + [MODEL] * 15)
    assert np.all(np.asarray(batch.reward[:5]) == 7.0)
    mixed = real.replace(domain=jnp.array([TARGET] * 12 + [SOURCE] * 8, jnp.int32))
    kept = mopo.transform_batch(state, mixed, None, jax.random.PRNGKey(4)).domain[:5]
    assert list(np.asarray(kept)) == [TARGET] * 3 + [SOURCE] * 2  # both keep their share
    filled = np.asarray(state["buffer"]["next_obs"][:24, 0])
    assert np.isin(np.asarray(batch.next_obs[5:, 0]), filled).all()  # drawn from filled rows


def test_presets_and_settings_are_checked():
    assert preset_settings("hopper/medium-v0") == {"horizon": 5, "penalty": 5.0}
    assert preset_settings("walker2d-mass-2.0/medium-replay-v0") == {"horizon": 1, "penalty": 1.0}
    assert preset_settings("pointreach/mixed-v0") == {}
    sac = get_learner("sac")(get_learner("sac").Config(), LearnerSpec(OBS, ACT, 100))
    with pytest.raises(ConfigError, match="real_ratio"):
        MOPO(real_ratio=1.0).bind(sac)
    with pytest.raises(ConfigError, match="model_data"):
        MOPO(model_data="sources").bind(sac)
    with pytest.raises(ConfigError, match="uncertainty must be one of"):
        MOPO(uncertainty="max").bind(sac)
    bc = get_learner("bc")(get_learner("bc").Config(), LearnerSpec(OBS, ACT, 100))
    with pytest.raises(ConfigError, match="mopo"):
        MOPO().bind(bc)


def test_mopo_trains_end_to_end_and_resumes(point_reach_data, tmp_path):
    """Dynamics phase (cached), then SAC on real + model rows; killed after the first
    evaluation and resumed: the model comes from the cache, the buffer from the checkpoint."""
    import shiftrl
    from shiftrl.dynamics.store import cache_root
    from shiftrl.envs.toy import POINT_REACH_ID
    from tests.conftest import Interrupt, stop_at

    overrides = {
        "hidden": (32, 32),
        "batch_size": 64,
        "eval_every": 50,
        "eval_episodes": 5,
        "mopo.rollout_batch": 64,
        "mopo.rollout_every": 40,
        "mopo.model_hidden": (16,),
        "mopo.model_members": 3,
        "mopo.model_elites": 2,
        "mopo.model_max_epochs": 3,
    }
    common = dict(steps=100, eval_envs=[POINT_REACH_ID], overrides=overrides, progress=False)
    with pytest.raises(Interrupt):
        shiftrl.train(
            "mopo", point_reach_data, out=tmp_path / "run", callbacks=[stop_at(50)], **common
        )
    models = sorted(p.name for p in cache_root().iterdir() if not p.name.startswith("."))
    run = shiftrl.train("mopo", point_reach_data, out=tmp_path / "run", resume=True, **common)
    assert sorted(p.name for p in cache_root().iterdir() if not p.name.startswith(".")) == models
    assert [r["step"] for r in run.rows] == [50, 100]
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert recorded["algo"] == "sac" and recorded["addons"][0]["name"] == "mopo"
    row = run.rows[-1]
    assert row["addon/mopo/buffer_size"] > 0 and np.isfinite(row["critic/q"])
    assert row["addon/mopo/rollout_length"] == 5.0  # PointReach never terminates
    policy = shiftrl.load_policy(tmp_path / "run")
    assert policy.act(np.zeros((1, 1), np.float32)).shape == (1, 1)

    # the model tested on the policy's own episodes (its eval env), as a user would check
    # whether the policy drives the model where it is wrong
    from typer.testing import CliRunner

    from shiftrl.cli import app

    model_dir = json.loads((tmp_path / "run" / "models.json").read_text())["mopo"]["dynamics"]
    args = ["dynamics", "eval", model_dir["cache_dir"], "--policy", str(tmp_path / "run")]
    result = CliRunner().invoke(app, [*args, "--transitions", "200", "--horizon", "5", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["dataset"].startswith("policy of") and report["one_step"]["rows"] == 200
    assert len(report["rollout"]["elite_mean_state_mse"]) == 5
    both = CliRunner().invoke(app, [*args, "--dataset", "x"])
    assert both.exit_code == 2 and "give --dataset or --policy" in both.output


class ValueStub:
    """A learner whose target value is sum(s'), so MOBILE's penalty is known by hand."""

    def target_value(self, state, obs, rng):
        return obs.sum(axis=-1)


def test_mobile_penalty_is_the_std_over_elites_of_next_values(rolled_out):
    from shiftrl.addons import MOBILE

    _, state, _ = rolled_out
    # elites 0 and 2 predict delta z = -0.2 and +0.1: Q' differs by 0.3 between them
    state = {**state, "model": known_model(dz=(-0.2, 5.0, 0.1), noisy=False)}
    mobile = prepared_mopo(MOBILE, beta=2.0, real_ratio=0.25, rollout_batch=8, retain_epochs=2)
    real = Batch(
        obs=jnp.full((20, OBS), 0.5),
        action=jnp.zeros((20, ACT)),
        reward=jnp.full((20,), 7.0),
        next_obs=jnp.zeros((20, OBS)),
        terminal=jnp.zeros(20),
        domain=jnp.full((20,), TARGET, jnp.int32),
    )
    ctx = AddOnContext(ValueStub(), None)
    batch = mobile.transform_batch(state, real, ctx, jax.random.PRNGKey(5))
    u = np.std([-0.2, 0.1], ddof=1)  # = 0.3 / sqrt(2)
    np.testing.assert_allclose(np.asarray(batch.reward[:5]), 7.0)  # real rows untouched
    k_mix = jax.random.split(jax.random.PRNGKey(5))[0]  # the same rows, without the penalty
    mixed = MOPO.transform_batch(mobile, state, real, ctx, k_mix)
    np.testing.assert_allclose(batch.reward[5:], mixed.reward[5:] - 2.0 * u, atol=1e-4)
    direct = mobile.inconsistency(state, real.obs, real.action, ctx, jax.random.PRNGKey(6))
    np.testing.assert_allclose(np.asarray(direct), u, atol=1e-5)


def test_mobile_target_is_deterministic_and_clamped_at_zero(batch):
    import dataclasses

    from tests.conftest import FIXED_SPEC

    sac_cls = get_learner("sac")
    config = dataclasses.replace(sac_cls.PRESETS["mobile"], hidden=(16, 16))
    learner = sac_cls(config, FIXED_SPEC)
    state = learner.init(jax.random.PRNGKey(0))
    low = batch.replace(reward=jnp.full_like(batch.reward, -100.0))
    assert np.all(np.asarray(learner.td_target(state, low, jax.random.PRNGKey(1))) == 0.0)
    # otherwise r + gamma (1 - d) min_i Q'_i(s', a'), with no entropy term
    key = jax.random.PRNGKey(1)
    next_a, _ = learner.sample(state.actor.params, batch.next_obs, key)
    q_next = learner.q(state.critic_target, batch.next_obs, next_a).min(0)
    expected = np.maximum(batch.reward + 0.99 * (1.0 - batch.terminal) * q_next, 0.0)
    np.testing.assert_allclose(learner.td_target(state, batch, key), expected, rtol=1e-5, atol=1e-6)


def test_mobile_trains_end_to_end(point_reach_data, tmp_path):
    import shiftrl
    from shiftrl.envs.toy import POINT_REACH_ID

    overrides = {
        "hidden": (32, 32),
        "batch_size": 64,
        "eval_every": 50,
        "eval_episodes": 5,
        "mobile.rollout_batch": 64,
        "mobile.rollout_every": 40,
        "mobile.num_samples": 4,
        "mobile.model_hidden": (16,),  # the MOPO test's ensemble: reused from the cache
        "mobile.model_members": 3,
        "mobile.model_elites": 2,
        "mobile.model_max_epochs": 3,
    }
    with pytest.warns(UserWarning, match="clip_target_at_zero=false"):
        run = shiftrl.train(
            "mobile",
            point_reach_data,
            steps=50,
            eval_envs=[POINT_REACH_ID],
            out=tmp_path / "run",
            overrides=overrides,
            progress=False,
        )
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert recorded["learner"]["clip_target_at_zero"] and not recorded["learner"]["backup_entropy"]
    assert recorded["addons"][0]["name"] == "mobile"
    assert run.rows[-1]["addon/mobile/buffer_size"] > 0 and np.isfinite(run.rows[-1]["critic/q"])


@pytest.fixture(scope="module")
def random_point_reach():
    from shiftrl.data.collect import collect
    from shiftrl.data.dataset import DatasetMetadata
    from shiftrl.envs.toy import POINT_REACH_ID, TOY_REFERENCE

    low, high = TOY_REFERENCE[POINT_REACH_ID]
    meta = DatasetMetadata(
        name="point-reach/random", env_id=POINT_REACH_ID, ref_min_score=low, ref_max_score=high
    )

    def uniform(obs, rng):
        return rng.uniform(-1.0, 1.0, (len(obs), 1))

    return collect(POINT_REACH_ID, uniform, 4000, num_envs=8, seed=0, metadata=meta)


def test_mopo_and_mobile_beat_bc_and_model_free_sac_where_the_data_miss_actuators(tmp_path):
    """PointReach with four faulty thrusters that only push the point away from the goal;
    the data (uniform a, thrusters never fired) say nothing about them. BC copies the data
    (measured 24.0); SAC on the same data without model rollouts learns a's use but fires
    the thrusters its critic never saw (sum |u| 1.16, score 13.7); MOPO and MOBILE, the
    same SAC on model rollouts penalised by the models' disagreement, keep them nearly off
    (0.41, 0.42) and score 71.4 and 69.3 (seed 0, 1,500 steps). Seeds 0-2 and the controls
    (MOPO with lambda 0, TD3+BC: both fire the thrusters) are in docs/methods.md."""
    import shiftrl
    from shiftrl.data.collect import collect
    from shiftrl.data.dataset import DatasetMetadata
    from shiftrl.envs.toy import POINT_REACH_THRUSTERS_ID, TOY_REFERENCE
    from tests.conftest import FAST_RUN, tiny_overrides

    env = POINT_REACH_THRUSTERS_ID
    low, high = TOY_REFERENCE[env]
    meta = DatasetMetadata(
        name="point-reach-thrusters/random", env_id=env, ref_min_score=low, ref_max_score=high
    )

    def thrusters_off(obs, rng):
        action = np.zeros((len(obs), 5), np.float32)
        action[:, 0] = rng.uniform(-1.0, 1.0, len(obs))
        return action

    data = collect(env, thrusters_off, 4000, num_envs=8, seed=0, metadata=meta)
    rollouts = {
        "rollout_batch": 256,
        "rollout_every": 250,
        "horizon": 5,
        "model_hidden": (32, 32),
        "model_members": 4,
        "model_elites": 2,
        "model_max_epochs": 30,
    }
    states = np.linspace(-2.0, 2.0, 9, dtype=np.float32)[:, None]
    scores, thrust = {}, {}
    for algo in ("bc", "sac", "mopo", "mobile"):
        overrides = tiny_overrides("bc" if algo == "bc" else "sac", eval_every=1500, **FAST_RUN)
        if algo != "bc":  # a fixed, small temperature: 1,500 steps are too few to tune it
            overrides.update({"auto_entropy": False, "alpha_multiplier": 0.05})
        if algo in ("mopo", "mobile"):
            overrides.update({f"{algo}.{k}": v for k, v in rollouts.items()})
        if algo == "mobile":
            overrides["clip_target_at_zero"] = False  # PointReach's rewards are negative
        run = shiftrl.train(
            algo,
            data,
            steps=1500,
            eval_envs=[env],
            out=tmp_path / algo,
            overrides=overrides,
            progress=False,
        )
        scores[algo] = run.score("final")
        thrust[algo] = float(np.abs(run.policy.act(states)[:, 1:]).sum(-1).mean())
    # bounds with room for another CPU's numerics: over seeds 0-2 MOPO / MOBILE scored
    # >= 53.1 / 43.6, BC <= 24.0, SAC <= 13.7; SAC's thruster use was >= 2.2x theirs
    floor = max(35.0, scores["bc"] + 15.0, scores["sac"] + 25.0)
    assert min(scores["mopo"], scores["mobile"]) > floor, scores
    assert thrust["sac"] > 1.5 * max(thrust["mopo"], thrust["mobile"]), thrust


def test_dara_composes_with_mopo(point_reach_data, random_point_reach, tmp_path):
    """`--algo mopo --addon dara`: DARA corrects the real SOURCE rows MOPO keeps, MODEL rows
    are left to MOPO's penalty; both add-ons train and log in one run."""
    import shiftrl
    from shiftrl.envs.toy import POINT_REACH_ID

    overrides = {
        "hidden": (32, 32),
        "batch_size": 64,
        "eval_every": 50,
        "eval_episodes": 5,
        "mopo.rollout_batch": 64,
        "mopo.rollout_every": 40,
        "mopo.real_ratio": 0.5,
        "mopo.model_data": "all",
        "mopo.model_hidden": (16,),
        "mopo.model_members": 3,
        "mopo.model_elites": 2,
        "mopo.model_max_epochs": 3,
        "dara.hidden": (16, 16),
    }
    run = shiftrl.train(
        "mopo",
        point_reach_data,
        sources=[random_point_reach],
        addons=["dara"],
        steps=50,
        eval_envs=[POINT_REACH_ID],
        out=tmp_path / "run",
        overrides=overrides,
        progress=False,
    )
    row = run.rows[-1]
    assert row["addon/mopo/buffer_size"] > 0 and np.isfinite(row["critic/q"])
    assert any(k.startswith("addon/dara/") for k in row)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert [a["name"] for a in recorded["addons"]] == ["mopo", "dara"]
