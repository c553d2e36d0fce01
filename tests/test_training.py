"""The trainer: resume equals an uninterrupted run, batches mix target and source data in
the asked ratio with domain labels, add-ons plug in through the hook point, timeouts
stay bootstrappable, and run folders hold what they promise."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

import shiftrl
from shiftrl.addons import ADDONS, AddOn
from shiftrl.core.types import MODEL, SOURCE, TARGET, Batch
from shiftrl.data.preprocess import apply, fit_preprocessor
from shiftrl.envs.toy import POINT_REACH_ID
from shiftrl.learners import TD3BC, LearnerSpec
from shiftrl.learners.base import Learner
from shiftrl.training import checkpoint
from shiftrl.training.loop import (
    ChunkPacer,
    SamplerSpec,
    batch_counts,
    choose_seed_axes,
    init_carry,
    make_train_chunk,
    make_train_step,
    next_boundary,
    sample_batch,
    stack_carries,
    to_device,
    unstack_carry,
)
from tests.conftest import FAST_RUN, Interrupt, stop_at, tiny_overrides

RUN = dict(FAST_RUN, eval_episodes=4)


def test_resume_equals_uninterrupted(point_reach_data, tmp_path):
    common = dict(
        steps=400,
        eval_envs=[POINT_REACH_ID],
        overrides=tiny_overrides("td3bc", eval_every=200, **RUN),
        progress=False,
    )
    full = shiftrl.train("td3bc", point_reach_data, out=tmp_path / "full", **common)

    with pytest.raises(Interrupt):
        shiftrl.train(
            "td3bc",
            point_reach_data,
            out=tmp_path / "killed",
            callbacks=[stop_at(200)],
            **common,
        )
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path / "killed")] == [
        "step_0000000200.msgpack"
    ]
    resumed = shiftrl.train(
        "td3bc", point_reach_data, out=tmp_path / "killed", resume=True, **common
    )

    a = serialization.msgpack_restore(checkpoint.latest(full.dir).read_bytes())["carry"]
    b = serialization.msgpack_restore(checkpoint.latest(resumed.dir).read_bytes())["carry"]
    jax.tree.map(np.testing.assert_array_equal, a, b)  # params, optimizer states, RNG key, step
    assert [r["step"] for r in resumed.rows] == [200, 400]
    assert resumed.rows[-1]["return"] == full.rows[-1]["return"]


def test_vmapped_seeds_equal_separate_runs(point_reach_data, tmp_path):
    """Seeds trained as one vmapped program (killed after the first evaluation, resumed)
    end where each seed's own run ends, in the same run-folder format."""
    common = dict(
        steps=400,
        eval_envs=[POINT_REACH_ID],
        overrides=tiny_overrides("td3bc", eval_every=200, **RUN),
        progress=False,
    )
    seen = []

    def kill_after_first_eval(row):
        seen.append((row["seed"], row["step"]))
        if row == {**row, "seed": 3, "step": 200}:  # the last seed's row: both saved
            raise Interrupt

    group = tmp_path / "group"
    with pytest.raises(Interrupt):
        shiftrl.train_seeds(
            "td3bc",
            point_reach_data,
            seeds=[0, 3],
            out=group,
            callbacks=[kill_after_first_eval],
            **common,
        )
    runs = shiftrl.train_seeds(
        "td3bc",
        point_reach_data,
        seeds=[0, 3],
        out=group,
        resume=True,
        callbacks=[lambda r: seen.append((r["seed"], r["step"]))],
        **common,
    )
    assert seen == [(0, 200), (3, 200), (0, 400), (3, 400)]
    assert [r.dir.name for r in runs] == ["seed0", "seed3"]

    def carry(run):
        return serialization.msgpack_restore(checkpoint.latest(run.dir).read_bytes())["carry"]

    for run, seed in zip(runs, [0, 3], strict=True):
        solo = shiftrl.train(
            "td3bc", point_reach_data, seed=seed, out=tmp_path / f"solo{seed}", **common
        )
        meta = [json.loads((r.dir / "config.json").read_text()) for r in (run, solo)]
        assert meta[0] == meta[1]  # config (with the seed), preprocessor, checksums
        # batched matmuls sum in another order: 400 Adam steps drift by rounding, which
        # stays far below the difference between two seeds (checked below)
        drift = jax.tree.map(_relative_gap, carry(run), carry(solo))
        assert max(jax.tree.leaves(drift)) < 0.01
        assert [r["step"] for r in run.rows] == [200, 400]
        np.testing.assert_allclose(run.rows[-1]["return"], solo.rows[-1]["return"], rtol=0.02)
    between_seeds = jax.tree.map(
        _relative_gap, carry(runs[0])["learner"], carry(runs[1])["learner"]
    )
    assert np.median(jax.tree.leaves(between_seeds)) > 0.1


def _relative_gap(a, b) -> float:
    """Largest difference between two arrays, relative to the second's largest entry."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.abs(a - b).max() / (np.abs(b).max() + 1e-8)) if b.size else 0.0


class _Counting(Learner):
    """A learner whose step counter counts every update, or only some (data-dependent)."""

    name = "counting"

    def __init__(self, data_dependent: bool):
        super().__init__(None, LearnerSpec(2, 1))
        self.data_dependent = data_dependent

    def init(self, rng):
        return {"w": jax.random.normal(rng, (2,)), "step": jnp.zeros((), jnp.int32)}

    def update(self, state, batch, rng, hooks=None):
        r = batch.reward.mean()
        inc = (r > jnp.median(batch.reward)).astype(jnp.int32) if self.data_dependent else 1
        return {"w": state["w"] + r, "step": state["step"] + inc}, {"r": r}


@pytest.mark.parametrize("data_dependent", [False, True])
def test_seed_axes_share_counters_only_when_seeds_keep_them_equal(point_reach_data, data_dependent):
    """Step counters stay unstacked (one value for all seeds, so a cond on the step is a
    branch, not a select) unless a seed's counter comes to depend on its own data."""
    learner = _Counting(data_dependent)
    pre = fit_preprocessor([point_reach_data], TD3BC.Config())
    data = to_device([apply(point_reach_data, pre)])
    sampler = SamplerSpec((16,), (TARGET,))
    carries = [init_carry(learner, (), learner.spec, s) for s in (0, 1)]
    axes = choose_seed_axes(learner, (), sampler, carries, data)
    shared = None if not data_dependent else 0  # else every leaf one entry per seed
    assert axes.step == shared and axes.learner["step"] == shared
    assert axes.rng == 0 and axes.learner["w"] == 0
    out, metrics = make_train_chunk(learner, (), sampler, axes)(
        stack_carries(carries, axes), data, 3
    )
    assert metrics["r"].shape == (2,)
    seeds = [unstack_carry(out, i, axes) for i in (0, 1)]
    assert [int(c.step) for c in seeds] == [3, 3]
    assert not np.allclose(seeds[0].learner["w"], seeds[1].learner["w"])
    if not data_dependent:
        assert [int(c.learner["step"]) for c in seeds] == [3, 3]


def test_vmapped_seeds_need_shared_data(point_reach_data, tmp_path):
    with pytest.raises(shiftrl.core.errors.ConfigError, match="own target subset"):
        shiftrl.train_seeds(
            "td3bc",
            point_reach_data,
            seeds=[0, 1],
            steps=10,
            target_fraction=0.5,
            out=tmp_path,
            progress=False,
        )


def test_run_folder_contents(point_reach_data, tmp_path):
    run = shiftrl.train(
        "bc",
        point_reach_data,
        steps=200,
        eval_envs=[POINT_REACH_ID],
        out=tmp_path / "run",
        overrides=tiny_overrides("bc", eval_every=100, tensorboard=True, **RUN),
        progress=False,
    )
    files = {p.name for p in run.dir.iterdir()}
    assert {
        "config.json",
        "metrics.jsonl",
        "metrics.csv",
        "checkpoints",
        "learning_curve.png",
    } <= files
    assert any((run.dir / "tensorboard").glob("events.out.tfevents.*"))  # [dev] has tensorboardX
    meta = json.loads((run.dir / "config.json").read_text())
    assert meta["config"]["learner"]["actor_hidden"] == [32, 32]
    assert meta["checksums"] == [point_reach_data.checksum()]
    rows = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [100, 200]
    assert all(
        "normalized_score" in r
        and "actor/loss" in r
        and len(r[f"eval/{POINT_REACH_ID}/returns"]) == 4
        for r in rows
    )
    csv_header = (run.dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "normalized_score" in csv_header and "step" in csv_header
    # the best evaluation's checkpoint is recorded and loadable by name, the latest by default
    best = max(rows, key=lambda r: r["normalized_score"])["step"]
    assert checkpoint.best_step(run.dir) == best
    assert shiftrl.load_policy(run.dir, step="best").step == best
    assert shiftrl.load_policy(run.dir).step == 200
    with pytest.raises(shiftrl.core.errors.ShiftRLError, match="steps kept: 100, 200"):
        shiftrl.load_policy(run.dir, step=150)
    # a second fresh run into the same folder is refused rather than mixed in
    with pytest.raises(shiftrl.core.errors.ConfigError):
        shiftrl.train(
            "bc",
            point_reach_data,
            steps=200,
            out=run.dir,
            overrides=tiny_overrides("bc"),
            progress=False,
        )
    assert (run.dir / ".shiftrl-run").is_file()  # the ownership marker
    # a run killed after writing config.json but before its first checkpoint (SIGKILL
    # skips the cleanup) is started again by --resume, not continued from an empty carry;
    # only shiftrl's own files go, the user's notes beside them stay
    killed = tmp_path / "killed"
    (killed / "analysis").mkdir(parents=True)
    (killed / ".shiftrl-run").write_text((run.dir / ".shiftrl-run").read_text())
    (killed / "config.json").write_text((run.dir / "config.json").read_text())
    (killed / "metrics.jsonl").write_text('{"step": 100, "return": 1.0}\n{"step": 2')
    (killed / "notes.txt").write_text("mine")
    (killed / "analysis" / "fig.txt").write_text("also mine")
    again = shiftrl.train(
        "bc",
        point_reach_data,
        steps=200,
        eval_envs=[POINT_REACH_ID],
        out=killed,
        resume=True,
        overrides=tiny_overrides("bc", eval_every=100, **RUN),
        progress=False,
    )
    assert [r["step"] for r in again.rows] == [100, 200]
    assert again.rows[-1]["return"] == rows[-1]["return"]
    assert (killed / "notes.txt").read_text() == "mine"
    assert (killed / "analysis" / "fig.txt").read_text() == "also mine"


def test_rotation_keeps_the_latest_and_the_best_checkpoint(tmp_path):
    carry = {"w": np.zeros(2, np.float32)}
    for step, score in [(1, 10.0), (2, 50.0), (3, 20.0), (4, None), (5, 30.0)]:
        checkpoint.save(tmp_path, step, carry, keep=2, score=score)
    kept = [int(p.stem.split("_")[1]) for p in checkpoint.list_checkpoints(tmp_path)]
    assert kept == [2, 4, 5] and checkpoint.best_step(tmp_path) == 2
    checkpoint.save(tmp_path, 6, carry, keep=2, score=float("nan"))  # no score: not a best
    checkpoint.save(tmp_path, 7, carry, keep=2, score=60.0)
    kept = [int(p.stem.split("_")[1]) for p in checkpoint.list_checkpoints(tmp_path)]
    assert kept == [6, 7] and checkpoint.best_step(tmp_path) == 7


def test_batch_counts_follow_source_fraction():
    assert batch_counts(256, [1000], 0.5) == (256,)
    assert batch_counts(256, [1000, 5000], 0.5) == (128, 128)
    assert batch_counts(256, [100, 3000, 1000], 0.75) == (64, 144, 48)
    assert sum(batch_counts(255, [10, 7, 13], 0.3)) == 255


def test_sampler_labels_domains(point_reach_data):
    pre = fit_preprocessor([point_reach_data], TD3BC.Config())
    arrays = apply(point_reach_data, pre)
    shifted = {k: v + 100.0 if k == "obs" else v for k, v in arrays.items()}  # tell sources apart
    data = to_device([arrays, shifted])
    batch = sample_batch(data, SamplerSpec((24, 40), (TARGET, SOURCE)), jax.random.PRNGKey(0))
    domain = np.asarray(batch.domain)
    assert (domain == TARGET).sum() == 24 and (domain == SOURCE).sum() == 40
    assert np.all(np.asarray(batch.obs)[domain == SOURCE] > 50) and np.all(
        np.asarray(batch.obs)[domain == TARGET] < 50
    )


def test_timeouts_are_not_terminals(point_reach_data):
    """PointReach episodes end by time limit only: every row must stay bootstrappable."""
    assert point_reach_data.timeouts.sum() == point_reach_data.num_episodes
    assert point_reach_data.terminals.sum() == 0
    arrays = apply(point_reach_data, fit_preprocessor([point_reach_data], TD3BC.Config()))
    assert arrays["terminal"].sum() == 0


def test_chunk_boundaries_and_pacing():
    """Chunks end on every evaluation and loss-log step; the pacer aims at a few seconds
    per compiled call, ignores the compiling first call and grows at most 8-fold."""
    assert next_boundary(0, 1_000_000, 5000, 1000) == 1000
    assert next_boundary(4990, 1_000_000, 5000, 3000) == 5000
    assert next_boundary(95, 100, 30, 1000) == 100
    pacer = ChunkPacer(seconds=2.0, first=10)
    assert pacer.next(1000) == 10
    pacer.done(10, 30.0)  # compilation: not a measurement
    assert pacer.next(1000) == 10 and pacer.next(3) == 3
    pacer.done(10, 0.001)  # fast steps: growth capped
    assert pacer.next(10**9) == 80
    pacer.done(80, 8.0)  # 10 steps/s: 2 s is 20 steps
    assert pacer.next(10**9) == 20


def test_chunking_does_not_change_the_result(point_reach_data):
    """One compiled chunk serves any length, and 10 steps as 3 + 7 end bitwise where
    10 steps in one call end (so a run stopped at any chunk boundary resumes exactly)."""
    learner = TD3BC(
        TD3BC.Config(actor_hidden=(16,), critic_hidden=(16,)),
        LearnerSpec(point_reach_data.obs_dim, point_reach_data.act_dim, 10),
    )
    pre = fit_preprocessor([point_reach_data], TD3BC.Config())
    data = to_device([apply(point_reach_data, pre)])
    sampler = SamplerSpec((16,), (TARGET,))
    chunk = make_train_chunk(learner, (), sampler, guard=True)
    init = init_carry(learner, (), learner.spec, 0)
    split, m3, _ = chunk(jax.tree.map(jnp.copy, init), data, 3)
    split, m7, _ = chunk(split, data, 7)
    one, m_one, _ = chunk(init, data, 10)
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(split), strict=True):
        np.testing.assert_array_equal(a, b)
    assert chunk._cache_size() == 1
    loss = "critic/loss" if "critic/loss" in m_one else next(iter(m_one))
    np.testing.assert_allclose(m_one[loss], (3 * m3[loss] + 7 * m7[loss]) / 10, rtol=1e-5)


# -- the add-on hook point ----------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SourceRewardShift(AddOn):
    """Test double for a DARA-like reward transform with trainable state, and a
    MOPO-like source of model transitions appended to every batch."""

    name = "test_shift"
    shift: float = -1.0
    model_rows: int = 8

    def init(self, rng, spec):
        return {"updates": jnp.zeros((), jnp.int32)}

    def update(self, state, batch, ctx, rng):
        # add-ons can read the learner's state, e.g. its value estimate
        v = ctx.learner.value(ctx.learner_state, batch.obs)
        return {"updates": state["updates"] + 1}, {"mean_value": v.mean()}

    def transform_batch(self, state, batch, ctx, rng):
        reward = jnp.where(batch.domain == SOURCE, batch.reward + self.shift, batch.reward)
        model = Batch(
            obs=batch.obs[: self.model_rows],
            action=batch.action[: self.model_rows],
            reward=jnp.full((self.model_rows,), 7.0),
            next_obs=batch.next_obs[: self.model_rows],
            terminal=jnp.zeros(self.model_rows),
            domain=jnp.full((self.model_rows,), MODEL, jnp.int32),
        )
        return Batch.concat([batch.replace(reward=reward), model])

    def actor_hook(self, state, batch, terms, weights, rng):
        return {**terms, "extra": jnp.ones(batch.size)}, {**weights, "extra": 0.5}


def test_addon_hook_point(point_reach_data):
    spec = LearnerSpec(1, 1, 100)
    learner = TD3BC(TD3BC.Config(actor_hidden=(8,), critic_hidden=(8,)), spec)
    addon = SourceRewardShift()
    pre = fit_preprocessor([point_reach_data], learner.config)
    arrays = apply(point_reach_data, pre)
    data = to_device([arrays, arrays])
    sampler = SamplerSpec((16, 16), (TARGET, SOURCE))

    seen = {}
    original_update = learner.update

    def spy_update(state, batch, rng, hooks):
        seen["batch"] = batch
        return original_update(state, batch, rng, hooks)

    learner.update = spy_update  # observe the batch the learner receives (eager run)
    step = make_train_step(learner, (addon,), sampler)
    carry = init_carry(learner, (addon,), spec, seed=0)
    rng_batch = jax.random.split(carry.rng, 5)[1]
    raw = sample_batch(data, sampler, rng_batch)
    carry, metrics = step(carry, None, data)
    carry, metrics = step(carry, None, data)  # step 2: the delayed actor runs with the hook

    b = seen["batch"]
    assert b.size == 16 + 16 + 8
    d = np.asarray(b.domain)
    assert (d == MODEL).sum() == 8 and np.all(np.asarray(b.reward)[d == MODEL] == 7.0)
    assert int(carry.addons["test_shift"]["updates"]) == 2
    assert "addon/test_shift/mean_value" in metrics
    # the actor objective picked up the extra weighted term: loss = td3bc loss + 0.5
    assert float(metrics["actor/extra"]) == 1.0
    # first step: only source rewards were shifted
    carry0 = init_carry(learner, (addon,), spec, seed=0)
    learner.update = spy_update
    step(carry0, None, data)
    r_in, r_out = np.asarray(raw.reward), np.asarray(seen["batch"].reward)[:32]
    np.testing.assert_allclose(r_out[:16], r_in[:16])
    np.testing.assert_allclose(r_out[16:], r_in[16:] - 1.0)


def test_addon_registry_round_trip(point_reach_data, tmp_path):
    """An add-on recorded in config.json is rebuilt on load (checkpoint includes its state)."""
    ADDONS["test_shift"] = SourceRewardShift
    try:
        from shiftrl.training.config import make_config
        from shiftrl.training.run import train

        config = make_config(
            "td3bc", steps=100, eval_every=100, addons=({"name": "test_shift", "shift": -2.0},)
        )
        config = dataclasses.replace(
            config,
            learner=dataclasses.replace(
                config.learner, actor_hidden=(32, 32), critic_hidden=(32, 32)
            ),
            batch_size=64,
            eval_envs=(POINT_REACH_ID,),
            eval_episodes=4,
        )
        run = train(
            config, point_reach_data, [point_reach_data], out=tmp_path / "addon", progress=False
        )
        meta = json.loads((run.dir / "config.json").read_text())
        assert meta["config"]["addons"] == [{"name": "test_shift", "shift": -2.0}]
        assert meta["batch_counts"] == [32, 32]
    finally:
        ADDONS.pop("test_shift")


@pytest.mark.parametrize(
    "algo", ["bc", "td3bc", "iql", "cql", "bcq", "bear", "bracp", "awr", "sac"]
)
def test_initial_carry_has_no_weak_types(algo):
    """A weakly typed leaf (a parameter or counter made from a Python scalar) comes back
    strongly typed from the first update, and the changed input type compiles the train
    chunk again: SAC and CQL compiled it three times per run before `strong_types`."""
    from shiftrl.learners import get_learner

    cls = get_learner(algo)
    learner = cls(cls.Config(), LearnerSpec(3, 2, 1_000_000))
    carry = jax.eval_shape(lambda: init_carry(learner, (), learner.spec, seed=0))
    weak = [
        jax.tree_util.keystr(path)
        for path, leaf in jax.tree_util.tree_leaves_with_path(carry)
        if leaf.weak_type
    ]
    assert weak == []


def test_sac_train_chunk_compiles_once():
    from shiftrl.learners import get_learner

    cls = get_learner("sac")
    learner = cls(cls.Config(hidden=(8,)), LearnerSpec(4, 2, 100))
    chunk = make_train_chunk(learner, (), SamplerSpec((8,), (TARGET,)))
    carry = init_carry(learner, (), learner.spec, seed=0)
    shapes = {"obs": (50, 4), "next_obs": (50, 4), "action": (50, 2), "reward": (50,)}
    data = ({**{k: jnp.zeros(v) for k, v in shapes.items()}, "terminal": jnp.zeros(50)},)
    for _ in range(3):
        carry, _ = chunk(carry, data, 2)
    assert chunk._cache_size() == 1
