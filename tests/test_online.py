"""Online training: SAC learns Pendulum from scratch, a killed online run resumes from its
checkpoint, and the shipped zoo policies are ordered random < medium < expert."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shiftrl.learners import SAC, LearnerSpec
from shiftrl.training import checkpoint
from shiftrl.training.online import OnlineConfig, train_online
from shiftrl.zoo import load_behaviour, manifest
from shiftrl.zoo.export import _episode_returns, _uniform
from tests.conftest import Interrupt, stop_at

SMALL_SAC = SAC.Config(hidden=(64, 64))


def online_config(**kw) -> OnlineConfig:
    base = dict(
        env_id="Pendulum-v1",
        total_steps=8000,
        num_envs=4,
        start_steps=1000,
        steps_per_iter=1000,
        eval_every=2000,
        eval_episodes=5,
        checkpoint_every=2000,
        buffer_size=20_000,
    )
    return OnlineConfig(**{**base, **kw})


def test_sac_learns_pendulum_online(tmp_path):
    learner = SAC(SMALL_SAC, LearnerSpec(3, 1, 8000))
    rows = train_online(learner, online_config(), tmp_path / "sac", progress=False)
    first, last = rows[0]["normalized_score"], rows[-1]["normalized_score"]
    assert first < 30, first  # near random at the start
    assert last > 70, [round(r["normalized_score"]) for r in rows]


def test_online_resume(tmp_path):
    learner = SAC(SMALL_SAC, LearnerSpec(3, 1, 3000))
    config = online_config(
        total_steps=3000, eval_every=1000, checkpoint_every=1000, start_steps=500
    )
    with pytest.raises(Interrupt):
        train_online(learner, config, tmp_path / "run", progress=False, callbacks=[stop_at(2000)])
    assert checkpoint.latest(tmp_path / "run").name == "step_0000001000.msgpack"
    rows = train_online(learner, config, tmp_path / "run", resume=True, progress=False)
    assert [r["step"] for r in rows] == [1000, 2000, 3000]
    payload_steps = json.loads((tmp_path / "run" / "config.json").read_text())["online_config"][
        "total_steps"
    ]
    assert payload_steps == 3000


def test_online_divergence_stops_before_a_checkpoint(tmp_path):
    import dataclasses

    from shiftrl.core.errors import DivergenceError

    blowup = dataclasses.replace(SMALL_SAC, qf_lr=1e30)
    learner = SAC(blowup, LearnerSpec(3, 1, 3000))
    config = online_config(total_steps=3000, eval_every=1000, checkpoint_every=1000)
    with pytest.raises(DivergenceError, match="online training diverged by environment step"):
        train_online(learner, config, tmp_path / "run", progress=False)
    assert checkpoint.latest(tmp_path / "run") is None  # nothing non-finite was written


def test_shipped_pendulum_policies_are_ordered():
    entry = manifest()["policies"]["pendulum-base"]
    env_id = entry["env_id"]
    random = _episode_returns(env_id, _uniform(entry), 10, seed=1).mean()
    medium = _episode_returns(env_id, load_behaviour("pendulum-base", "medium"), 10, seed=1).mean()
    expert = _episode_returns(env_id, load_behaviour("pendulum-base", "expert"), 10, seed=1).mean()
    assert random < medium < expert
    assert expert > -400  # the swing-up is solved
    # the manifest's figures are what the policies do
    snaps = {s["name"]: s for s in entry["snapshots"]}
    assert expert == pytest.approx(
        snaps["expert"]["return_mean"], abs=3 * snaps["expert"]["return_std"]
    )
    assert np.isfinite(entry["random_return"])


def test_finetune_improves_a_weak_policy(tmp_path):
    import shiftrl
    from shiftrl.data.io import save_dataset
    from shiftrl.data.registry import make_dataset
    from shiftrl.training.finetune import finetune

    path = save_dataset(make_dataset("pendulum/medium-v0", 4000, 0), tmp_path / "pendulum.npz")
    nets = {"actor_hidden": (64, 64), "critic_hidden": (64, 64)}
    run = shiftrl.train(
        "td3bc",
        path,
        steps=200,
        out=tmp_path / "offline",
        overrides={**nets, "eval_every": 200, "eval_episodes": 5, "seed": 1},
        progress=False,
    )
    res = finetune(
        run.dir, 4000, eval_every=2000, eval_episodes=5, steps_per_iter=500, progress=False
    )
    assert res.score_before < 50  # deliberately weak: 200 offline steps
    # "before" starts from the offline evaluations' states (seed 1's, not seed 0's): the
    # same policy, the same score
    assert res.score_before == pytest.approx(run.rows[-1]["normalized_score"])
    assert res.score_after > res.score_before + 30
    assert (res.out / "finetune.json").exists() and 0 <= res.regret <= 1.5

    # across dynamics, from the command line: the same offline policy, online in a pendulum
    # twice as heavy, scored with that variant's own references
    from typer.testing import CliRunner

    from shiftrl.cli import app
    from shiftrl.envs.reference import reference_scores

    shifted, out = "shiftrl/pendulum-mass-2.0-v0", tmp_path / "heavy"
    argv = ["finetune", str(run.dir), "--online-steps", "1000", "--env", shifted, "--out", str(out)]
    r = CliRunner().invoke(
        app, [*argv, "--eval-every", "1000", "--eval-episodes", "2", "--no-progress"]
    )
    assert r.exit_code == 0, r.output
    # --no-progress: plain progress lines (on stderr), then the outcome
    done = [x for x in r.output.splitlines() if x.startswith("done: ")]
    assert done == [done[0]] and done[0].startswith(f"done: {out}") and "score before" in done[0]
    record = json.loads((out / "finetune.json").read_text())
    assert record["env"] == shifted
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    low, high = reference_scores(shifted)
    ret = np.mean(rows[-1]["returns"])
    assert rows[-1]["normalized_score"] == pytest.approx(100 * (ret - low) / (high - low))


def test_finetune_replay_modes_and_refusals(tmp_path):
    import shiftrl
    from shiftrl.core.errors import ConfigError
    from shiftrl.data.io import load_dataset, save_dataset
    from shiftrl.data.registry import make_dataset
    from shiftrl.training.finetune import finetune, top_trajectories

    data = make_dataset("pendulum/medium-v0", 2000, 0)
    best = top_trajectories(data, 3)
    assert best.num_episodes == 3
    assert np.allclose(np.sort(best.episode_returns()), np.sort(data.episode_returns())[-3:])

    path = save_dataset(data, tmp_path / "pendulum.npz")
    assert load_dataset(str(path)).checksum() == data.checksum()
    run = shiftrl.train(
        "td3bc",
        path,
        steps=100,
        out=tmp_path / "offline",
        overrides={"actor_hidden": (64, 64), "critic_hidden": (64, 64), "eval_every": 100},
        progress=False,
    )
    res = finetune(
        run.dir, 1000, replay="half", eval_every=500, eval_episodes=2, steps_per_iter=500,
        progress=False,
    )  # fmt: skip
    meta = json.loads((res.out / "config.json").read_text())
    assert meta["replay"] == "half" and meta["online_config"]["offline_fraction"] == 0.5
    assert len(res.rows) == 2

    with pytest.raises(ConfigError, match="--replay"):
        finetune(run.dir, 1000, replay="some", out=tmp_path / "x", steps_per_iter=500)
    # a run with an offline-only add-on is refused before anything is built
    dara_run = tmp_path / "dara-run"
    dara_run.mkdir()
    meta = json.loads((run.dir / "config.json").read_text())
    meta["config"]["addons"] = [{"name": "dara"}]
    (dara_run / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="no online phase"):
        finetune(dara_run, 1000, steps_per_iter=500)


def test_a_checkpoint_holds_only_the_replay_rows_it_cannot_rebuild(tmp_path):
    """A fine-tuning checkpoint saves the rows collected online, not the preallocated empty
    rest of the buffer nor the prefilled offline data; loading puts every row back bitwise."""
    import jax
    import jax.numpy as jnp

    from shiftrl.data.collect import collect
    from shiftrl.training.online import (
        OnlineCarry,
        _OnlineLoop,
        identity_preprocessor,
        prefill,
        replay_init,
        replay_insert,
    )

    learner = SAC(SMALL_SAC, LearnerSpec(3, 1, 1000))
    pre = identity_preprocessor("Pendulum-v1")
    offline = collect("Pendulum-v1", lambda o, rng: rng.uniform(-2, 2, (len(o), 1)), 600, seed=0)
    config = online_config(buffer_size=200_000)
    loop = _OnlineLoop(learner, config, "Pendulum-v1", pre, tmp_path, None, prefilled=len(offline))

    def prefilled_carry():
        replay = prefill(replay_init(config.buffer_size, 3, 1), offline, pre)
        state = learner.init(jax.random.PRNGKey(0))
        return OnlineCarry(state, replay, jax.random.PRNGKey(1), jnp.asarray(0, jnp.int32))

    rng = np.random.default_rng(0)
    online_rows = {
        "obs": rng.normal(size=(400, 3)),
        "action": rng.uniform(-1, 1, (400, 1)),
        "reward": rng.normal(size=400),
        "next_obs": rng.normal(size=(400, 3)),
        "terminal": np.zeros(400),
    }
    carry = prefilled_carry()
    carry = carry.replace(
        replay=replay_insert(
            carry.replay, {k: jnp.asarray(v, jnp.float32) for k, v in online_rows.items()}
        ),
        env_steps=jnp.asarray(400, jnp.int32),
    )
    loop.save(carry, 400)
    path = checkpoint.latest(tmp_path)
    full_buffer_bytes = 200_000 * (3 + 1 + 1 + 3 + 1) * 4
    assert path.stat().st_size < full_buffer_bytes / 20  # 400 rows and the networks
    extra = checkpoint.load_extra(path)
    assert extra["replay_rows"] == [len(offline), len(offline) + 400]
    restored = loop.load_checkpoint(prefilled_carry(), extra)
    for a, b in zip(jax.tree.leaves(carry), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
