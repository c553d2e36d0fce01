"""NeoRL-like data: the `-neorl` envs (x-position first, NeoRL's reward), the behaviour
snapshots chosen at 25/50/75% of the best return, the 80/20 mean/sample mix, first-N
trajectories, determinism, registration (docs/datasets.md, "NeoRL-like data")."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from shiftrl.data import neorl, registry
from shiftrl.data.zoo_datasets import NumpyBehaviour
from shiftrl.dynamics.termination import robot_of_env, termination_fn
from shiftrl.envs import NEORL_VARIANTS, make_env, resolve, variant_of
from shiftrl.envs.neorl import neorl_reward
from shiftrl.envs.reference import reference_scores

ID = "hopper/neorl-medium-v0"


@pytest.fixture(scope="module")
def three():
    """Three trajectories of hopper's neorl-medium (the shipped zoo's weights)."""
    return registry.make_dataset(ID, 3, 0)


def test_neorl_envs_have_x_first_and_neorl_reward():
    """The -neorl env is the variant's env with x prepended; its reward is NeoRL's function
    of (obs, action, next_obs), v5's plus 1 on the terminating step only."""
    for robot, dims in (("hopper", 12), ("walker2d", 18), ("halfcheetah", 18)):
        env = make_env(f"{robot}-gravity-0.5-neorl")
        std = make_env(f"shiftrl/{robot}-gravity-0.5-v0")
        obs, _ = env.reset(seed=1)
        std.reset(seed=1)
        assert obs.shape == (dims,)
        rng = np.random.default_rng(0)
        terminated = False
        for _ in range(300 if robot != "halfcheetah" else 20):
            a = rng.uniform(-1, 1, env.action_space.shape)
            nxt, r, terminated, _, info = env.step(a)
            std_nxt, std_r, std_term, _, _ = std.step(a)
            np.testing.assert_allclose(nxt[1:], std_nxt)
            assert nxt[0] == pytest.approx(info["x_position"])
            assert r == pytest.approx(neorl_reward(robot, obs, a, nxt), abs=1e-9)
            assert r - std_r == pytest.approx(1.0 if terminated else 0.0, abs=1e-9)
            obs = nxt
            if terminated:
                break
        assert terminated == (robot != "halfcheetah")  # random hopper/walker2d fall


def test_neorl_variant_ids_resolve_to_their_dynamics():
    v = variant_of("shiftrl/hopper-mass-2.0-neorl-v0")
    assert v is not None and v.observation == "neorl"
    assert (v.physics, v.dynamics, v.gym_id) == (
        "hopper-mass-2.0",
        "mass-2.0",
        "shiftrl/hopper-mass-2.0-neorl-v0",
    )
    assert resolve("walker2d-base-neorl") == "shiftrl/walker2d-base-neorl-v0"
    assert "shiftrl/halfcheetah-friction-0.5-neorl-v0" in gym.registry
    assert not any(n.startswith(("ant", "pendulum")) for n in NEORL_VARIANTS)
    # the variant's own references; the termination function skips the x column
    assert reference_scores(v.gym_id) == reference_scores("hopper-mass-2.0")
    assert robot_of_env(v.gym_id) == "hopper-neorl"
    obs = np.zeros((2, 12), np.float32)
    obs[:, 0] = [100.0, 100.0]  # x far away: must not matter
    obs[:, 1] = [1.25, 0.5]  # z: healthy, fallen
    done = termination_fn(v.gym_id)(obs, np.zeros((2, 3)), obs)
    assert done.tolist() == [False, True]


def test_registry_lists_the_neorl_levels():
    ids = registry.dataset_ids()
    variants = neorl.neorl_variants()
    assert {"hopper-base", "walker2d-base", "halfcheetah-base"} <= set(variants)
    for v in variants:
        for level in ("neorl-low", "neorl-medium", "neorl-high"):
            did = f"{v}/{level}-v0"
            assert did in ids
            spec = registry.spec_of(did)
            assert (spec.default_size, spec.size_unit) == (1000, "trajectories")
            assert spec.env_id == f"shiftrl/{v}-neorl-v0"
    assert registry.canonical(ID) == "hopper-base/neorl-medium-v0"
    assert registry.parse_id("hopper/neorl-high-n100-s1-v0") == (
        "hopper-base/neorl-high-v0",
        100,
        1,
    )


def test_choices_are_closest_to_the_fractions_and_current():
    """The shipped choice is the snapshot closest to 25/50/75% of the best deterministic
    return among all measured, measured from the weights the zoo ships now."""
    assert (
        neorl.choose_levels(
            {"a": 0.0, "b": 24.0, "c": 52.0, "d": 70.0, "e": 100.0}, dict(a=1, b=2, c=3, d=4, e=5)
        )["levels"]["neorl-high"]["snapshot"]
        == "d"
    )
    for variant, c in neorl.choices()["variants"].items():
        returns = {n: s["return_mean"] for n, s in c["snapshots"].items()}
        steps = {n: s["train_steps"] for n, s in c["snapshots"].items()}
        assert neorl.choose_levels(returns, steps) == {k: c[k] for k in ("best", "levels")}
        best = max(returns.values())
        chosen = [c["levels"][lv]["return_mean"] for lv in neorl.LEVEL_FRACTIONS]
        assert chosen == sorted(chosen)  # low <= medium <= high
        for level, frac in neorl.LEVEL_FRACTIONS.items():
            gap = abs(c["levels"][level]["return_mean"] - frac * best)
            assert all(gap <= abs(r - frac * best) for r in returns.values())
        assert neorl.check_choices(variant) == [], f"{variant}: re-run measure_neorl_levels.py"


def test_measured_return_is_reproduced():
    """The JSON's figure for one chosen snapshot is what measuring it again gives (a cheap
    one: hopper-gravity-0.5's low-level policy). Floating-point kernels may differ across
    machines, and a deterministic policy's rollouts with them, hence the tolerance."""
    c = neorl.variant_choice("hopper-gravity-0.5")
    name = c["levels"]["neorl-low"]["snapshot"]
    episodes = neorl.choices()["episodes"]
    returns = neorl.deterministic_returns("hopper-gravity-0.5", name, episodes=episodes)
    assert returns.mean() == pytest.approx(c["snapshots"][name]["return_mean"], rel=0.1)


def test_dataset_has_x_reward_and_mean_sample_mix(three):
    ds = three
    assert ds.observations.shape[1] == 12 and ds.metadata.env_id == "shiftrl/hopper-base-neorl-v0"
    # x at index 0: NeoRL's reward is recomputed from it (float32 x: ~1e-4 after /0.008)
    np.testing.assert_allclose(
        neorl_reward("hopper", ds.observations, ds.actions, ds.next_observations),
        ds.rewards,
        atol=2e-3,
    )
    # whole episodes: each ends with a termination or a timeout at 1000 steps
    ends = np.flatnonzero(ds.terminals | ds.timeouts)
    assert len(ends) == 3 and ends[-1] == len(ds) - 1
    # the policy acted on the observation without x: ~80% of actions are its mean, exactly
    snap = neorl.variant_choice("hopper-base")["levels"]["neorl-medium"]["snapshot"]
    mean = NumpyBehaviour.from_zoo("hopper-base", snap, deterministic=True)
    is_mean = [
        np.array_equal(mean(o[None, 1:], None)[0], a)
        for o, a in zip(ds.observations, ds.actions, strict=True)
    ]
    frac = float(np.mean(is_mean))
    n = len(ds)
    assert abs(frac - 0.8) < 4 * np.sqrt(0.16 / n) + 0.01, (frac, n)


def test_same_seed_same_bytes_and_first_n_trajectories(three):
    again = registry.make_dataset(ID, 3, 0)
    assert again.checksum() == three.checksum()
    two = registry.make_dataset(ID, 2, 0)
    n = len(two)
    np.testing.assert_array_equal(three.observations[:n], two.observations)
    np.testing.assert_array_equal(three.actions[:n], two.actions)
    other = registry.make_dataset(ID, 2, 1)
    assert other.checksum() != two.checksum()


def test_builds_sized_in_trajectories_are_checked_with_fixed_episodes(three):
    """Elsewhere than the recorded platform a build is checked statistically: for NeoRL-style
    builds the episode count is fixed and the transitions vary, not the other way round."""
    from shiftrl.data.verify import build_statistics, compare

    other = registry.make_dataset(ID, 3, 1)  # a diverged build is a build with another seed
    rec, here = build_statistics(three), build_statistics(other)
    assert rec["transitions"] != here["transitions"]
    checks = {c.figure: c for c in compare(rec, here, other.episode_returns(), "trajectories")}
    assert checks["episodes"].tolerance == 0 and checks["episodes"].ok
    assert checks["transitions"].tolerance > 0 and checks["transitions"].ok
    assert other.metadata.provenance["size_unit"] == "trajectories"
