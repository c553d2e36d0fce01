"""The shift add-ons follow the code whose published numbers the benchmarks compare against,
state their settings in the units those use, log what a reader needs, and their controls
are wired (issue 24):

- SRPO's bonus at saturation is lambda log 10 of *raw* reward (the released form), whatever
  the learner's reward scaling; the paper form is the option; the shuffled-label control;
- DARA's input noise is in raw observation / action units and eta in raw reward units; its
  diagnostics (clean accuracies of both classifiers, delta_r per domain) are computed as
  stated; the constant-penalty control applies one constant to every source row;
- SSAR's beta(s) steps on the learner's actor updates only, its rate scales with
  `beta_lr_steps`, the uniform-beta control gives every trusted sample the same weight;
- SPOT's target actor keeps its dropout; optional numeric add-on settings parse from
  `--set`; size-proportional (D u D') batches; the suites' control cells are wired.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shiftrl.addons import DARA, SRPO, SSAR, AddOnContext
from shiftrl.core.errors import ConfigError
from shiftrl.core.types import SOURCE, TARGET, Batch
from shiftrl.data.preprocess import Preprocessor, fit_preprocessor
from shiftrl.learners import IQL, TD3BC, LearnerSpec
from shiftrl.learners.base import NO_HOOKS

B = 16
LOG10 = float(np.log(10.0))


def batch(obs_dim=2, act_dim=1, reward=None, seed=0) -> Batch:
    rng = np.random.default_rng(seed)
    obs = jnp.asarray(rng.normal(size=(B, obs_dim)).astype(np.float32))
    act = jnp.asarray(rng.uniform(-1, 1, size=(B, act_dim)).astype(np.float32))
    r = jnp.ones(B) if reward is None else jnp.asarray(reward, jnp.float32)
    domain = jnp.asarray([TARGET, SOURCE] * (B // 2), jnp.int32)
    return Batch(obs, act, r, obs[::-1], jnp.zeros(B), domain)


def preprocessor(obs_std=(1.0, 1.0), half=(1.0,), reward_scale=1.0) -> Preprocessor:
    obs_std, half = np.asarray(obs_std, np.float32), np.asarray(half, np.float32)
    return Preprocessor(np.zeros_like(obs_std), obs_std, -half, half, reward_scale)


def saturate(state: dict, logit: float) -> dict:
    """The discriminator with zero kernels and output bias `logit`: D(s) saturates."""
    params = jax.tree.map(jnp.zeros_like, state["disc"].params)
    last = sorted(params)[-1]
    params[last]["bias"] = jnp.full_like(params[last]["bias"], logit)
    return {**state, "disc": state["disc"].replace(params=params)}


# -- SRPO ---------------------------------------------------------------------------------
@pytest.mark.parametrize("logit", [50.0, -50.0])
def test_srpo_bonus_at_saturation_is_a_share_of_the_raw_reward(point_reach_data, logit):
    """Released form at saturation: +lambda log 10 (logit >= 10) or lambda log 0.1, in raw
    reward units. With IQL's 1000 / return-spread scaling the bonus is scaled like the
    rewards, so its size relative to the reward is the raw one: 0.23 / 3 = 8% of a hopper
    reward of 3 per step, not the 1.1x the paper form in the learner's units gave."""
    pre = fit_preprocessor([point_reach_data], IQL.Config())
    scale = pre.reward_scale
    assert scale != pytest.approx(1.0)  # the learner really rescales rewards
    srpo = SRPO(hidden=(8,))
    assert (srpo.form, srpo.reward_units, srpo.lam) == ("clipped", "raw", 0.1)
    state = saturate(
        srpo.calibrate(srpo.init(jax.random.PRNGKey(0), LearnerSpec(2, 1)), pre), logit
    )
    raw_reward = 3.0  # a hopper reward per step
    b = batch(reward=np.full(B, raw_reward * scale))
    out = srpo.transform_batch(state, b, None, None)
    bonus = np.asarray(out.reward - b.reward)
    expected = 0.1 * (LOG10 if logit > 0 else -LOG10)
    np.testing.assert_allclose(bonus, expected * scale, rtol=1e-5)
    share = np.abs(bonus) / np.asarray(b.reward)
    np.testing.assert_allclose(share, LOG10 * 0.1 / raw_reward, rtol=1e-5)  # 7.7%
    assert share.max() < 0.08

    # logged: mean |bonus| / mean |r| in the learner's units, and the saturated share
    ctx = AddOnContext(ValueByFirstFeature(), None)
    _, m = srpo.update(state, b, ctx, jax.random.PRNGKey(1))
    assert float(m["bonus_to_reward"]) == pytest.approx(LOG10 * 0.1 / raw_reward, rel=1e-5)
    assert float(m["saturated"]) == 1.0

    # the paper form is the option: lambda * logit clipped to 10, still in raw reward units
    paper = SRPO(hidden=(8,), form="paper")
    st = saturate(paper.calibrate(paper.init(jax.random.PRNGKey(0), LearnerSpec(2, 1)), pre), logit)
    bonus = np.asarray(paper.transform_batch(st, b, None, None).reward - b.reward)
    np.testing.assert_allclose(bonus, np.sign(logit) * 1.0 * scale, rtol=1e-5)
    # and in the learner's units on request (what the earlier default did)
    learner_units = SRPO(hidden=(8,), form="paper", reward_units="learner")
    st = saturate(
        learner_units.calibrate(learner_units.init(jax.random.PRNGKey(0), LearnerSpec(2, 1)), pre),
        logit,
    )
    bonus = np.asarray(learner_units.transform_batch(st, b, None, None).reward - b.reward)
    np.testing.assert_allclose(bonus, np.sign(logit) * 1.0, rtol=1e-5)


class ValueByFirstFeature:
    name = "oracle"

    def value(self, state, obs):
        return obs[:, 0]


def test_srpo_shuffled_labels_keep_the_count_and_lose_the_ranking():
    values = jnp.arange(64.0)
    ranked = SRPO(rho=0.25).labels_for(values, jax.random.PRNGKey(0))
    np.testing.assert_array_equal(ranked, (np.arange(64) >= 48).astype(np.float32))
    shuffled = np.asarray(
        SRPO(rho=0.25, labels_from="shuffled").labels_for(values, jax.random.PRNGKey(0))
    )
    assert shuffled.sum() == 16 and not np.array_equal(shuffled, ranked)
    # no value information: the shuffled 1-labels are not concentrated on high values
    assert abs(np.mean(np.flatnonzero(shuffled)) - 31.5) < 10
    with pytest.raises(ConfigError, match="labels_from"):
        SRPO(labels_from="random").check(TD3BC(TD3BC.Config(), LearnerSpec(1, 1)))


# -- DARA ---------------------------------------------------------------------------------
def test_dara_noise_and_eta_are_in_raw_units():
    dara = DARA(hidden=(8,), eta=0.2)
    assert (dara.noise_units, dara.reward_units) == ("raw", "raw")
    pre = preprocessor(obs_std=(2.0, 0.5), half=(4.0,), reward_scale=0.3)
    state = dara.calibrate(dara.init(jax.random.PRNGKey(0), LearnerSpec(2, 1)), pre)
    obs_noise, act_noise = dara.noise_scales(state)
    # std 1.0 on raw observations is 1 / obs_std on standardized ones (DARC, ODRL)
    np.testing.assert_allclose(obs_noise, [0.5, 2.0])
    np.testing.assert_allclose(act_noise, [0.25])
    learner_noise = DARA(hidden=(8,), noise_units="learner").noise_scales(state)
    assert float(learner_noise[0]) == 1.0 and float(learner_noise[1]) == 1.0
    # eta 0.2 of raw reward is 0.2 x 0.3 of the learner's (scaled) reward
    b = batch()
    out = dara.transform_batch(state, b, None, None)
    delta = np.asarray(dara.delta_r(state, b))
    is_src = np.asarray(b.domain) == SOURCE
    np.testing.assert_allclose(
        np.asarray(out.reward)[is_src], 1.0 - 0.2 * 0.3 * delta[is_src], rtol=1e-5
    )
    np.testing.assert_allclose(np.asarray(out.reward)[~is_src], 1.0)


def test_dara_diagnostics_are_what_they_say():
    dara = DARA(hidden=(8,))
    state = dara.init(jax.random.PRNGKey(3), LearnerSpec(2, 1))
    b = batch(seed=4)
    _, m = dara.update(state, b, None, jax.random.PRNGKey(0))
    l_sas, l_sa = (np.asarray(x) for x in dara.logits(DARA._params(state), b))
    is_src = np.asarray(b.domain) == SOURCE
    delta = l_sas - l_sa
    assert float(m["acc_sas"]) == pytest.approx(np.mean((l_sas > 0) == is_src))
    assert float(m["acc_sa"]) == pytest.approx(np.mean((l_sa > 0) == is_src))
    assert float(m["delta_r_source"]) == pytest.approx(delta[is_src].mean(), abs=1e-5)
    assert float(m["delta_r_source_std"]) == pytest.approx(delta[is_src].std(), abs=1e-5)
    assert float(m["delta_r_target"]) == pytest.approx(delta[~is_src].mean(), abs=1e-5)
    assert float(m["delta_r_target_std"]) == pytest.approx(delta[~is_src].std(), abs=1e-5)
    assert float(m["penalty_source"]) == pytest.approx(0.1 * delta[is_src].mean(), abs=1e-5)
    assert "acc_sas_noisy" in m


def test_dara_constant_control_applies_one_constant_to_source_rows():
    """The control keeps DARA's mean penalty and drops its dependence on (s, a, s')."""
    own, const = DARA(hidden=(8,), eta=0.5), DARA(hidden=(8,), eta=0.5, correction="constant")
    state = own.init(jax.random.PRNGKey(1), LearnerSpec(2, 1))
    b = batch(reward=np.arange(B, dtype=np.float32))
    is_src = np.asarray(b.domain) == SOURCE
    per_row = np.asarray(b.reward - own.transform_batch(state, b, None, None).reward)
    constant = np.asarray(b.reward - const.transform_batch(state, b, None, None).reward)
    assert np.ptp(per_row[is_src]) > 1e-3  # DARA's own penalty varies by transition
    np.testing.assert_allclose(constant[is_src], per_row[is_src].mean(), rtol=1e-5)
    np.testing.assert_allclose(constant[~is_src], 0.0)


# -- SSAR ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("every", "updates"), [("actor", 5), ("learner", 10)])
def test_ssar_beta_steps_on_actor_updates_only(every, updates):
    """TD3+BC updates its actor every second step; the official code updates beta(s) in
    the actor's branch, so 10 learner steps give beta 5 updates (and the n schedule is
    checked on those steps only)."""
    learner = TD3BC(TD3BC.Config(actor_hidden=(8,), critic_hidden=(8,)), LearnerSpec(1, 1))
    ssar = SSAR(select="none", hidden=(8,), update_every=every, lr=1e-3).bind(learner)
    state = ssar.init(jax.random.PRNGKey(0), learner.spec)
    lstate = learner.init(jax.random.PRNGKey(1))
    b = batch(obs_dim=1)
    stepped = []
    for i in range(10):
        ctx = AddOnContext(learner, lstate.replace(step=jnp.asarray(i, jnp.int32)))
        before = state["beta"].params
        state, m = ssar.update(state, b, ctx, jax.random.PRNGKey(i))
        moved = any(
            float(jnp.abs(x - y).max()) > 0
            for x, y in zip(
                jax.tree.leaves(before), jax.tree.leaves(state["beta"].params), strict=True
            )
        )
        stepped.append(moved)
        assert bool(m["beta_updated"]) == moved
    assert int(state["beta"].step) == updates and sum(stepped) == updates
    if every == "actor":  # the steps the learner's actor takes: (step + 1) % 2 == 0
        assert stepped == [i % 2 == 1 for i in range(10)]
    assert int(state["step"]) == 10


def test_ssar_beta_rate_scales_with_the_run_and_stats_are_logged():
    learner = TD3BC(TD3BC.Config(actor_hidden=(8,), critic_hidden=(8,)), LearnerSpec(1, 1))
    assert SSAR().bind(learner).beta_lr == pytest.approx(3e-8)
    assert SSAR(beta_lr_steps=100_000).bind(learner).beta_lr == pytest.approx(3e-7)
    ssar = SSAR(select="none", hidden=(8,), update_every="learner").bind(learner)
    state = ssar.init(jax.random.PRNGKey(0), learner.spec)
    b = batch(obs_dim=1)
    trust = (jnp.arange(B) % 4 == 0).astype(jnp.float32)
    b = b.replace(extras={"ssar/trust": trust})
    traj = dataclasses.replace(ssar, select="traj")
    _, m = traj.update(state, b, AddOnContext(learner, learner.init(jax.random.PRNGKey(1))), None)
    beta = np.asarray(ssar.beta(state["beta"].params, b.obs))[np.asarray(trust) > 0]
    assert float(m["trusted"]) == pytest.approx(0.25)
    for key, value in [
        ("beta", beta.mean()),
        ("beta_std", beta.std()),
        ("beta_min", beta.min()),
        ("beta_max", beta.max()),
    ]:
        assert float(m[key]) == pytest.approx(value, abs=1e-6), key


def test_ssar_uniform_control_gives_trusted_samples_the_mean_beta():
    learner = TD3BC(TD3BC.Config(actor_hidden=(8,), critic_hidden=(8,)), LearnerSpec(1, 1))
    state_ssar = SSAR(select="traj", hidden=(8,)).bind(learner)
    uniform = dataclasses.replace(state_ssar, beta_form="uniform")
    state = state_ssar.init(jax.random.PRNGKey(0), learner.spec)
    # move beta(s) away from its constant start so it depends on the state
    params = jax.tree.map(lambda x: x + 0.3, state["beta"].params)
    state = {**state, "beta": state["beta"].replace(params=params)}
    b = batch(obs_dim=1)
    trust = (jnp.arange(B) % 2).astype(jnp.float32)
    b = b.replace(extras={"ssar/trust": trust})
    own = np.asarray(state_ssar.weight(state, b))
    flat = np.asarray(uniform.weight(state, b))
    t = np.asarray(trust) > 0
    assert np.ptp(own[t]) > 1e-3  # state-wise
    np.testing.assert_allclose(flat[t], own[t].mean(), rtol=1e-5)  # the mean, everywhere
    np.testing.assert_allclose(flat[~t], 0.0)  # loosen_bound: untrusted rows stay off


# -- SPOT -----------------------------------------------------------------------------------
@pytest.mark.parametrize("keep", [True, False])
def test_spot_target_actor_keeps_its_dropout(keep):
    config = dataclasses.replace(
        TD3BC.PRESETS["spot"],
        actor_hidden=(16,),
        critic_hidden=(16,),
        policy_noise=0.0,  # the TD target's next action then varies by dropout only
        target_actor_dropout=keep,
    )
    learner = TD3BC(config, LearnerSpec(2, 1))
    state = learner.init(jax.random.PRNGKey(0))
    b = batch()
    targets = [
        learner.critic_loss(state.critic.params, state, b, jax.random.PRNGKey(k), NO_HOOKS)[1]
        for k in (1, 2)
    ]
    t0, t1 = (float(m["critic/target"]) for m in targets)
    assert (t0 != t1) == keep


# -- config, mixing -----------------------------------------------------------------------------
def test_optional_numeric_addon_settings_parse_from_set():
    from shiftrl.training.config import apply_overrides, make_config

    config = make_config("ssar-td3bc", dataset="hopper/medium-v0")
    assert config.addons[0]["trust_score"] is not None  # the official threshold, as a score
    out = apply_overrides(
        config,
        ["ssar.trust_score=none", "ssar.trust_return=1000", "ssar.lr=1e-7", "ssar.base=NULL"],
    )
    ssar = out.addons[0]
    assert ssar["trust_score"] is None and ssar["base"] is None
    assert ssar["trust_return"] == 1000.0 and isinstance(ssar["trust_return"], float)
    assert ssar["lr"] == pytest.approx(1e-7)
    out = apply_overrides(out, ["ssar.online_decay_steps=50000", "ssar.trust_return=none"])
    assert out.addons[0]["online_decay_steps"] == 50_000 and out.addons[0]["trust_return"] is None
    with pytest.raises(ConfigError, match="trust_return=high: expected a float"):
        apply_overrides(config, ["ssar.trust_return=high"])
    with pytest.raises(ConfigError, match="expected a int"):
        apply_overrides(config, ["ssar.online_decay_steps=1.5"])
    spot = apply_overrides(
        make_config("spot", dataset="hopper/medium-v0"), ["spot.online_lambda_steps=none"]
    )
    assert spot.addons[0]["online_lambda_steps"] is None


def test_union_mixing_draws_rows_by_dataset_size():
    from shiftrl.training.loop import batch_counts

    assert batch_counts(256, [100_000, 1_000_000], 0.5) == (128, 128)  # ODRL's 50/50
    assert batch_counts(256, [100_000, 1_000_000], 0.5, "union") == (23, 233)  # ~9% target
    assert batch_counts(256, [100, 100, 100], 0.5, "union") == (86, 85, 85)
    assert batch_counts(256, [10, 1_000_000], 0.5, "union") == (1, 255)  # every dataset sampled


# -- the suites' controls are wired --------------------------------------------------------
def _job_addons(suite: str, cell: str):
    from shiftrl.addons import build_addons
    from shiftrl.bench.runner import plan_jobs
    from shiftrl.bench.worker import job_config
    from shiftrl.training.run import build_learner

    (job,) = plan_jobs(suite, "quick", seeds=(0,), only=f"{cell}/")  # "/": this cell only
    config = job_config(job.to_json())
    learner = build_learner(config, 11, 3)
    return job, config, build_addons(config.addons, learner)


def test_dara_suite_controls_are_wired():
    job, config, (dara,) = _job_addons("dara", "hopper-medium.iql.1T+10S-dara-const")
    assert dara.correction == "constant" and config.sources == ("hopper-mass-2.0/medium-v0",)
    assert config.target_fraction == 0.1 and config.source_mixing == "fraction"
    for cell in (
        "hopper-medium.iql.1T+10S-union",
        "hopper-medium.iql.1T+10S-dara-union.gravity-0.5",
    ):
        job, config, _ = _job_addons("dara", cell)
        assert config.source_mixing == "union" and config.target_fraction == 0.1
    job, config, (dara,) = _job_addons("dara", "hopper-medium.iql.1T+S-same-dyn-dara")
    # the source: the target's own (unshifted) dynamics, another behaviour policy
    assert config.sources == ("hopper/expert-v0",) and dara.correction == "delta_r"
    job, config, addons = _job_addons("dara", "hopper-medium-replay.iql.1T+S-same-dyn")
    assert config.sources == ("hopper/medium-v0",) and addons == ()


def test_srpo_and_ssar_suite_controls_are_wired():
    _, config, (srpo,) = _job_addons("srpo", "hopper-medium.td3bc-srpo-shuffled")
    assert srpo.labels_from == "shuffled" and srpo.form == "clipped" and srpo.lam == 0.1
    _, _, (srpo,) = _job_addons("srpo", "hopper-medium.iql-srpo")
    assert srpo.labels_from == "value" and srpo.reward_units == "raw"
    for cell, lr in [
        ("hopper-medium.td3bc-ssar-uniform", 3e-7),
        ("hopper-medium.cql-ssar-uniform", 1e-7),
    ]:
        _, config, (ssar,) = _job_addons("ssar", cell)
        assert ssar.beta_form == "uniform" and ssar.beta_lr_steps == 100_000
        assert ssar.beta_lr == pytest.approx(lr)  # quick: 10x the official rate for 10x fewer steps


def test_spot_vae_pretrains_its_official_steps_under_every_budget():
    from shiftrl.bench.runner import plan_jobs
    from shiftrl.bench.worker import job_config

    for steps in (None, 10_000):
        (job,) = plan_jobs("spot", "quick", seeds=(0,), only="hopper-medium.spot", steps=steps)
        assert job_config(job.to_json()).addons[0]["pretrain_steps"] == 100_000


def test_union_mixing_reaches_the_run_sampler(point_reach_data):
    from shiftrl.training.config import make_config
    from shiftrl.training.run import prepare

    config = make_config("iql", source_mixing="union", target_fraction=0.1)
    setup = prepare(config, point_reach_data, [point_reach_data])
    n_target = len(setup.datasets[0])
    share = n_target / (n_target + len(point_reach_data))
    assert setup.sampler.counts[0] == pytest.approx(256 * share, abs=1)  # ~9%, not 50%
    with pytest.raises(ConfigError, match="source_mixing must be one of"):
        prepare(make_config("iql", source_mixing="sizes"), point_reach_data, [point_reach_data])
