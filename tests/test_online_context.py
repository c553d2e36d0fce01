"""SRPO's online setting: dynamics-randomized envs, context SAC, SRPO on it.

- a randomized env runs each episode in exactly one member's physics (the fixed variant's,
  step for step), drawn per episode, with no drift from switching back and forth;
- the shared context encoder's features separate two hidden dynamics (a linear probe beats
  chance by a wide margin) once it has seen a transition, and not before (episode reset);
- online, SRPO's discriminator learns to rank states like the context learner's value;
- the recurrent state is reset at episode boundaries in training (stored flags and hidden
  states) and in evaluation;
- `shiftrl train-online` end to end with `--addon srpo`, and a killed run resumes.
All runs share one tiny configuration, so the update burst compiles once for the module.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import serialization
from typer.testing import CliRunner

from shiftrl.addons import SRPO
from shiftrl.cli import app
from shiftrl.envs import make_env
from shiftrl.learners.base import LearnerSpec
from shiftrl.learners.sac_context import ContextSAC
from shiftrl.nets import MLP
from shiftrl.nets.context import ContextEncoder, encode_sequence
from shiftrl.training import checkpoint
from shiftrl.training.online import OnlineConfig, identity_preprocessor
from shiftrl.training.online_context import (
    run_recurrent_episodes,
    sample_windows,
    sequence_replay_init,
    sequence_replay_insert,
    train_context_online,
)

ENV = "shiftrl/pendulum-randomized-gravity-v0"
TINY = ContextSAC.Config(hidden=(32, 32), context_hidden=8, window=3)
TINY_SETTINGS = {
    "hidden": "32,32",
    "context_hidden": "8",
    "window": "3",
    "batch_size": "16",
    "num_envs": "2",
    "start_steps": "100",
    "steps_per_iter": "100",
    "eval_every": "100",
    "eval_episodes": "1",
    "checkpoint_every": "100",
    "srpo.hidden": "16",
}
runner = CliRunner()


def _rollout(env, seed, actions, dynamics=None):
    options = None if dynamics is None else {"dynamics": dynamics}
    obs, info = env.reset(seed=seed, options=options)
    out = [obs]
    for a in actions:
        obs, *_ = env.step(a)
        out.append(obs)
    return np.stack(out), info


@pytest.mark.parametrize("name", ["hopper-randomized-mass", "pendulum-randomized-gravity"])
def test_randomized_env_runs_each_episode_in_one_members_physics(name):
    env = make_env(name)
    members = env.get_wrapper_attr("variant").members
    actions = np.random.default_rng(0).uniform(-1, 1, (25, *env.action_space.shape))
    trajectories = []
    for i, member in enumerate(members):
        traj, info = _rollout(env, 3, actions, dynamics=i)
        assert info["dynamics"] == member.split("-", 1)[1]
        fixed, _ = _rollout(make_env(member), 3, actions)
        np.testing.assert_array_equal(traj, fixed)  # exactly the fixed variant's dynamics
        trajectories.append(traj)
    for a, b in zip(trajectories, trajectories[1:], strict=False):
        assert np.abs(a - b).max() > 1e-3  # the physics does change between members
    again, _ = _rollout(env, 3, actions, dynamics=len(members) - 1)
    np.testing.assert_array_equal(again, trajectories[-1])  # switching leaves no residue
    drawn = [env.reset(seed=s)[1]["dynamics_index"] for s in range(12)]
    assert len(set(drawn)) == len(members)  # drawn anew per episode
    assert drawn == [env.reset(seed=s)[1]["dynamics_index"] for s in range(12)]  # seeded
    _, _, _, _, step_info = env.step(actions[0])
    assert step_info["dynamics_index"] == drawn[-1]
    result = runner.invoke(app, ["envs", "--shift", "randomized"])
    assert result.exit_code == 0 and name in result.output


def test_context_encoder_features_separate_two_dynamics():
    """x' = x + k a with k = +0.3 or -0.3 hidden per episode. The encoder is trained briefly,
    without labels, to predict the step x' - x from (z_t, a_t); a linear probe on z_t then
    tells k apart once a transition has been seen, and is at chance at the first step."""
    T, B, hidden = 8, 128, 16
    rng = np.random.default_rng(0)

    def episodes(n):
        k = rng.choice([-0.3, 0.3], n)
        a = rng.uniform(-1, 1, (T, n, 1)).astype(np.float32)
        x = np.zeros((T + 1, n, 1), np.float32)
        x[0] = rng.uniform(-1, 1, (n, 1))
        for t in range(T):
            x[t + 1] = x[t] + k[:, None] * a[t]
        prev = np.concatenate([np.zeros((1, n, 1), np.float32), a[:-1]])
        reset = np.zeros((T, n), bool)
        reset[0] = True
        return x[:-1], prev, reset, a, x[1:] - x[:-1], k > 0

    enc, head = ContextEncoder(hidden, 8), MLP((32,), 1)
    params = {
        "enc": enc.init(
            jax.random.PRNGKey(0),
            jnp.zeros((1, hidden)),
            jnp.zeros((1, 1)),
            jnp.zeros((1, 1)),
            jnp.ones((1,), bool),
        ),
        "head": head.init(jax.random.PRNGKey(1), jnp.zeros((1, 9)))["params"],
    }
    opt = optax.adam(3e-3)

    def features(p, obs, prev, reset):
        return encode_sequence(enc, p["enc"], jnp.zeros((obs.shape[1], hidden)), obs, prev, reset)[
            2
        ]

    @jax.jit
    def train_step(p, o, data):
        obs, prev, reset, act, delta, _ = data

        def loss(p):
            z = features(p, obs, prev, reset)
            pred = head.apply({"params": p["head"]}, jnp.concatenate([z, act], -1))
            return jnp.mean((pred - delta) ** 2)

        g = jax.grad(loss)(p)
        updates, o = opt.update(g, o)
        return optax.apply_updates(p, updates), o

    o = opt.init(params)
    for _ in range(150):
        params, o = train_step(params, o, episodes(B))
    obs, prev, reset, _, _, label = episodes(400)
    z = np.asarray(jax.jit(features)(params, obs, prev, reset))

    def probe_accuracy(feats):  # least-squares linear probe, fit on half, tested on the rest
        X = np.concatenate([feats, np.ones((len(feats), 1))], 1)
        w = np.linalg.lstsq(X[:200], np.where(label[:200], 1.0, -1.0), rcond=None)[0]
        return np.mean((X[200:] @ w > 0) == label[200:])

    assert probe_accuracy(z[0]) < 0.7  # first step: nothing seen yet (state reset)
    assert probe_accuracy(z[3]) > 0.9 and probe_accuracy(z[-1]) > 0.9


def _filled_replay(learner, steps=40, num_envs=2, seed=0):
    rng = np.random.default_rng(seed)
    spec = learner.spec
    replay = sequence_replay_init(
        num_envs, 64, spec.obs_dim, spec.act_dim, learner.config.context_hidden
    )
    rows = {
        "obs": rng.normal(size=(num_envs, steps, spec.obs_dim)),
        "action": rng.uniform(-1, 1, (num_envs, steps, spec.act_dim)),
        "reward": rng.normal(size=(num_envs, steps)),
        "next_obs": rng.normal(size=(num_envs, steps, spec.obs_dim)),
        "terminal": np.zeros((num_envs, steps)),
        "prev_action": rng.uniform(-1, 1, (num_envs, steps, spec.act_dim)),
        "reset": (np.arange(steps) % 20 == 0)[None].repeat(num_envs, 0),
        "carry_pi": np.zeros((num_envs, steps, learner.config.context_hidden)),
        "carry_q": np.zeros((num_envs, steps, learner.config.context_hidden)),
    }
    return sequence_replay_insert(replay, {k: jnp.asarray(v, jnp.float32) for k, v in rows.items()})


def _spearman(a, b):
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return np.corrcoef(ra, rb)[0, 1]


def test_online_srpo_discriminator_ranks_states_by_context_value():
    from shiftrl.addons.base import AddOnContext

    learner = ContextSAC(TINY, LearnerSpec(3, 1))
    state = learner.init(jax.random.PRNGKey(0))
    batch = sample_windows(_filled_replay(learner), jax.random.PRNGKey(1), 128, TINY.window)
    values = np.asarray(learner.batch_value(state, batch))
    # the ranking uses each state's own context, not the first-step one
    assert np.abs(values - np.asarray(learner.value(state, batch.obs))).max() > 1e-6
    srpo = SRPO(hidden=(32,)).bind(learner)

    @jax.jit
    def train(s):
        def one(s, k):
            return srpo.update(s, batch, AddOnContext(learner, state), k)[0], None

        return jax.lax.scan(one, s, jax.random.split(jax.random.PRNGKey(3), 200))[0]

    s = train(srpo.init(jax.random.PRNGKey(2), learner.spec))
    logit = np.asarray(srpo.logit(s["disc"].params, batch.obs))
    assert _spearman(logit, values) > 0.8  # (the shuffled-label control: test_addons_fidelity)
    high = logit > np.median(logit)
    assert values[high].mean() > values[~high].mean()


def test_recurrent_state_resets_at_episode_boundaries_in_training(tmp_path):
    """No updates (warm-up longer than the run): the stored hidden states are the
    encoders' at their initial parameters, so they can be recomputed exactly."""
    learner = ContextSAC(TINY, LearnerSpec(3, 1))
    config = OnlineConfig(
        env_id=ENV,
        total_steps=500,
        num_envs=2,
        start_steps=10_000,
        steps_per_iter=100,
        eval_every=500,
        eval_episodes=1,
        checkpoint_every=500,
        buffer_size=1000,
    )
    train_context_online(learner, config, tmp_path / "run", progress=False)
    raw = serialization.msgpack_restore(checkpoint.latest(tmp_path / "run").read_bytes())
    data = raw["carry"]["replay"]["data"]
    enc_params = raw["carry"]["learner"]["actor"]["params"]["encoder"]
    reset, prev, action = data["reset"][:, :250], data["prev_action"][:, :250], data["action"]
    for e in range(2):
        assert np.flatnonzero(reset[e]).tolist() == [0, 200]  # pendulum episodes: 200 steps
        np.testing.assert_array_equal(prev[e, [0, 200]], 0.0)
        inner = np.setdiff1d(np.arange(1, 250), [200])
        np.testing.assert_array_equal(prev[e, inner], action[e, inner - 1])
    encoder = ContextEncoder(TINY.context_hidden, TINY.context_embedding)
    obs, stored = jnp.asarray(data["obs"][:, 200]), jnp.asarray(data["carry_pi"], jnp.float32)
    fresh, _ = encoder.apply(
        enc_params, jnp.zeros((2, 8)), obs, jnp.zeros((2, 1)), jnp.ones(2, bool)
    )
    # the new episode starts from 0 (stored in float16)
    np.testing.assert_allclose(stored[:, 201], fresh, atol=2e-3)
    carried, _ = encoder.apply(
        enc_params, stored[:, 200], obs, jnp.zeros((2, 1)), jnp.zeros(2, bool)
    )
    assert np.abs(np.asarray(carried) - np.asarray(fresh)).max() > 1e-4  # ... which mattered


def test_recurrent_state_resets_at_episode_start_in_evaluation():
    learner = ContextSAC(TINY, LearnerSpec(3, 1))
    state = learner.init(jax.random.PRNGKey(0))
    act = jax.jit(learner.act_step)
    calls = []

    def spy(state, carry, obs, prev, reset):
        carry, action = act(state, carry, obs, prev, reset)
        calls.append((np.asarray(prev).copy(), np.asarray(reset).copy(), np.asarray(action)))
        return carry, action

    pre = identity_preprocessor(ENV)
    returns = run_recurrent_episodes(spy, state, learner, pre, "shiftrl/pendulum-base-v0", 2, 0)
    assert returns.shape == (2,) and len(calls) == 200
    assert calls[0][1].all() and not any(c[1].any() for c in calls[1:])
    np.testing.assert_array_equal(calls[0][0], 0.0)
    for (_, _, a), (p, _, _) in zip(calls, calls[1:], strict=False):
        np.testing.assert_array_equal(p, a)


def test_train_online_cli_with_srpo_end_to_end_and_resume(tmp_path):
    out = tmp_path / "ctx"
    args = [
        "train-online",
        "--algo",
        "sac-context",
        "--env",
        ENV,
        "--steps",
        "200",
        "--out",
        str(out),
        "--addon",
        "srpo",
        "--no-progress",
    ]
    args += [x for k, v in TINY_SETTINGS.items() for x in ("--set", f"{k}={v}")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "mean return over the dynamics" in result.output
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [100, 200]
    members = ("pendulum-gravity-0.5", "pendulum-base", "pendulum-gravity-2.0")
    per_dynamics = [rows[-1][f"eval/shiftrl/{m}-v0/return"] for m in members]
    assert rows[-1]["return"] == pytest.approx(np.mean(per_dynamics))
    assert "addon/srpo/accuracy" in rows[-1] and np.isfinite(rows[-1]["critic/loss"])

    # a kill between the checkpoints of steps 100 and 200: resume from 100
    checkpoint.checkpoint_path(out, 200).unlink()
    result = runner.invoke(app, ["train-online", "--resume", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    resumed = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in resumed] == [100, 200]
    assert resumed[0] == rows[0]  # kept, not retrained from scratch
    assert checkpoint.checkpoint_path(out, 200).exists()

    bad = runner.invoke(
        app, ["train-online", "--algo", "maple-online", "--env", ENV, "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code != 0 and "unknown online algorithm" in bad.output
    dara = ["train-online", "--algo", "sac-context", "--env", ENV, "--addon", "dara"]
    bad = runner.invoke(app, [*dara, "--out", str(tmp_path / "y")])
    assert bad.exit_code != 0 and "does not run in an online context run" in bad.output


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_srpo_suite_online_block_plans_online_only_jobs(profile):
    from shiftrl.bench.online_jobs import run_settings
    from shiftrl.bench.runner import plan_jobs

    jobs = plan_jobs("srpo", profile, only=["*randomized*"])  # builds every job's run
    # envs x (base, +SRPO, its shuffled-label control) x seeds
    assert len(jobs) == 2 * 3 * (3 if profile == "quick" else 5)
    steps = {"quick": (20_000, 200_000), "paper": (100_000, 1_000_000)}[profile]
    for job in jobs:
        assert job.data_ids == () and job.cell.data_label.startswith("online in shiftrl/")
        kw = run_settings(job.to_json())
        pendulum = kw["env"] == "shiftrl/pendulum-randomized-gravity-v0"
        assert kw["steps"] == job.total_steps == steps[0 if pendulum else 1]
        assert kw["algo"] == "sac-context"
        srpo = job.cell.column != "context SAC"
        assert [a["name"] for a in kw["addons"]] == (["srpo"] if srpo else [])
        if job.cell.column.endswith(" shuffled"):
            assert kw["addons"][0]["labels_from"] == "shuffled"


def test_srpo_report_shows_the_online_block(tmp_path):
    """Hand-written online-only run folders (no training): the report reads them and shows
    the online block with +SRPO's arrow against context SAC."""
    from shiftrl.bench.report import write_report
    from shiftrl.bench.runner import write_study
    from shiftrl.bench.suites import get_suite
    from shiftrl.bench.suites.srpo import ONLINE_BLOCK

    study = tmp_path / "srpo-quick"
    study.mkdir()
    write_study(study, get_suite("srpo"), "quick", (0,), {}, "local")
    for cell, final in (("sac-context", 40.0), ("sac-context-srpo", 50.0)):
        run = study / f"pendulum-randomized-gravity.{cell}" / "seed0"
        run.mkdir(parents=True)
        meta = {"kind": "online-context", "online_config": {"seed": 0, "total_steps": 20_000}}
        (run / "config.json").write_text(json.dumps(meta))
        rows = [
            {"step": 10_000, "normalized_score": 20.0},
            {"step": 20_000, "normalized_score": final},
        ]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = write_report(study, reps=50).read_text()
    assert ONLINE_BLOCK in text
    row = next(r for r in text.splitlines() if r.startswith("| pendulum-randomized-gravity |"))
    assert "40.0 ± 0.0" in row and "50.0 ± 0.0 ↑" in row
    # the online block has its own heading and no "base dynamics only" tables (its cells
    # are evaluated in every dynamics of their env, not in the base variants)
    assert "## SRPO online (SRPO-like)" in text
    online_part = text.split("## SRPO online (SRPO-like)")[1].split("\n## ")[0]
    assert "base dynamics only" not in online_part
    assert "base dynamics only" in text  # the model-free block keeps them

    # a study of online cells alone states their budget, not the offline profile's
    from dataclasses import replace

    suite = get_suite("srpo")
    online = replace(suite, cells=tuple(c for c in suite.cells if c.online_only))
    alone = tmp_path / "srpo-online"
    alone.mkdir()
    write_study(alone, online, "quick", (0,), {}, "local")
    text = write_report(alone, reps=50).read_text()
    budget = next(line for line in text.splitlines() if line.startswith("**Budget:**"))
    assert "shiftrl/pendulum-randomized-gravity-v0 20,000" in budget
    assert "shiftrl/hopper-randomized-mass-v0 200,000" in budget
    assert "gradient steps" not in budget and "evaluation every 5,000 steps" in budget
