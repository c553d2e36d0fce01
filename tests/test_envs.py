"""Shifted-dynamics environments: registry, gymnasium registration, and the shifts themselves."""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from shiftrl.core.errors import ConfigError
from shiftrl.envs import (
    ROBOTS,
    VARIANTS,
    FrictionShift,
    GravityShift,
    KinematicShift,
    LengthShift,
    MassShift,
    MorphShift,
    apply_shift,
    list_variants,
    make_env,
    register_all,
    resolve,
    resolve_env_id,
    variant_of,
)
from shiftrl.envs.registry import MUJOCO_ROBOTS

MUJOCO_VARIANTS = [v for v in VARIANTS.values() if v.robot in MUJOCO_ROBOTS]


@pytest.fixture(scope="module", autouse=True)
def _registered():
    register_all()
    # the stock HalfCheetah-v5 built below would append a deprecation warning to
    # ./MUJOCO_LOG.TXT under mujoco 4.0; keep the file sink off for this module
    previous = mujoco.MjLogConfig.get()
    quiet = mujoco.MjLogConfig.get()
    quiet.logto_file = False
    quiet.set()
    yield
    previous.set()


def _make(name: str, **kwargs):
    return gym.make(VARIANTS[name].gym_id, **kwargs)


def _jid(model, name: str) -> int:
    return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)


def _bid(model, name: str) -> int:
    return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)


# --------------------------------------------------------------------------- table


def test_variant_table_covers_the_families():
    assert len(VARIANTS) >= 4 * 26 + 5
    for robot in MUJOCO_ROBOTS:
        names = {v.name for v in VARIANTS.values() if v.robot == robot}
        expected = {f"{robot}-base", f"{robot}-mass-0.5", f"{robot}-mass-2.0"}
        expected |= {f"{robot}-mass-torso-2.0", f"{robot}-damping-0.5", f"{robot}-damping-2.0"}
        expected |= {
            f"{robot}-{k}-{x}" for k in ("gravity", "friction") for x in (0.1, 0.5, 2.0, 5.0)
        }
        assert expected <= names
        r = ROBOTS[robot]
        assert len(r.kinematic_groups) == 2 and len(r.morph_groups) == 2
        for group in r.kinematic_groups:
            assert {
                f"{robot}-kinematic-{group}-{lvl}" for lvl in ("easy", "medium", "hard")
            } <= names
        for group in r.morph_groups:
            assert {f"{robot}-morph-{group}-{lvl}" for lvl in ("easy", "medium", "hard")} <= names
    assert {
        "pendulum-base",
        "pendulum-gravity-0.5",
        "pendulum-gravity-2.0",
        "pendulum-mass-2.0",
    } <= set(VARIANTS)
    for name in ("hopper-kinematic-legjnt-easy", "hopper-morph-foot-hard", "hopper-gravity-0.5"):
        assert name in VARIANTS
    rows = list_variants()
    assert len(rows) == len(VARIANTS)
    row = next(r for r in rows if r["name"] == "hopper-gravity-0.5")
    assert row["id"] == "shiftrl/hopper-gravity-0.5-v0"
    assert (
        row["robot"] == "hopper" and row["kind"] == "gravity" and "gravity x0.5" in row["changes"]
    )


def test_lookup_and_unknown_names():
    assert variant_of("hopper-gravity-0.5").name == "hopper-gravity-0.5"
    assert variant_of("shiftrl/hopper-gravity-0.5-v0").name == "hopper-gravity-0.5"
    assert variant_of("Hopper-v5") is None
    assert resolve("hopper-gravity-0.5") == "shiftrl/hopper-gravity-0.5-v0"
    assert resolve("shiftrl/hopper-gravity-0.5-v0") == "shiftrl/hopper-gravity-0.5-v0"
    assert resolve("Pendulum-v1") == "Pendulum-v1"
    assert resolve_env_id("hopper-base") == "shiftrl/hopper-base-v0"
    assert resolve_env_id("hopper-bsae-v9") is None
    for bad in ("hopper-gravty-0.5", "shiftrl/hopper-gravty-0.5-v0", "Hoppr-v5"):
        with pytest.raises(ConfigError) as info:
            make_env(bad)
        msg = str(info.value)
        assert "\n" not in msg and repr(bad) in msg
    with pytest.raises(ConfigError, match="hopper-gravity-0.5"):
        make_env("hopper-gravty-0.5")


def test_register_all_is_idempotent_and_make_sets_spec(recwarn):
    ids = register_all()
    assert register_all() == ids
    assert not [w for w in recwarn if "Overriding" in str(w.message)]
    assert all(i in gym.registry for i in ids)
    env = gym.make("shiftrl/hopper-gravity-0.5-v0")
    assert env.spec.id == "shiftrl/hopper-gravity-0.5-v0"
    assert env.spec.max_episode_steps == 1000
    assert env.unwrapped.shiftrl_variant == "hopper-gravity-0.5"
    assert gym.make("shiftrl/pendulum-gravity-2.0-v0").spec.max_episode_steps == 200
    # Minari-style recovery: the spec round-trips through JSON and rebuilds the same shift.
    again = gym.make(gym.envs.registration.EnvSpec.from_json(env.spec.to_json()))
    np.testing.assert_array_equal(
        again.unwrapped.model.opt.gravity, env.unwrapped.model.opt.gravity
    )
    assert again.unwrapped.model.opt.gravity[2] == pytest.approx(-9.81 / 2)


def test_make_env_accepts_names_ids_and_plain_gym_ids():
    assert make_env("hopper-gravity-0.5").spec.id == "shiftrl/hopper-gravity-0.5-v0"
    assert make_env("shiftrl/hopper-gravity-0.5-v0").spec.id == "shiftrl/hopper-gravity-0.5-v0"
    assert make_env("Pendulum-v1").spec.id == "Pendulum-v1"
    env = make_env("hopper-base", reset_noise_scale=0.0)  # kwargs reach the base env
    obs, _ = env.reset(seed=3)
    np.testing.assert_array_equal(env.unwrapped.data.qpos, env.unwrapped.init_qpos)
    assert obs.shape == (11,)


# --------------------------------------------------------------------------- base == stock


@pytest.mark.parametrize(
    "robot,stock",
    [
        ("hopper", "Hopper-v5"),
        ("walker2d", "Walker2d-v5"),
        ("halfcheetah", "HalfCheetah-v5"),
        ("ant", "Ant-v5"),
        ("pendulum", "Pendulum-v1"),
    ],
)
def test_base_variant_equals_stock_env(robot, stock):
    ours, ref = make_env(f"{robot}-base"), gym.make(stock)
    assert ours.spec.max_episode_steps == ref.spec.max_episode_steps
    o1, _ = ours.reset(seed=7)
    o2, _ = ref.reset(seed=7)
    np.testing.assert_array_equal(o1, o2)
    rng = np.random.default_rng(0)
    lo, hi = ref.action_space.low, ref.action_space.high
    for t in range(50):
        a = rng.uniform(lo, hi).astype(np.float32)
        s1, s2 = ours.step(a), ref.step(a)
        np.testing.assert_array_equal(s1[0], s2[0])
        assert s1[1:4] == s2[1:4], t
        if s1[2] or s1[3]:
            np.testing.assert_array_equal(ours.reset(seed=t)[0], ref.reset(seed=t)[0])


# --------------------------------------------------------------------------- the named change

FIELDS = {
    "body_mass": lambda m: m.body_mass,
    "body_inertia": lambda m: m.body_inertia,
    "gravity": lambda m: m.opt.gravity,
    "geom_friction": lambda m: m.geom_friction,
    "dof_damping": lambda m: m.dof_damping,
    "jnt_range": lambda m: m.jnt_range,
    "geom_size": lambda m: m.geom_size,
    "body_pos": lambda m: m.body_pos,
}
CHANGES = {
    "mass": {"body_mass", "body_inertia"},
    "gravity": {"gravity"},
    "friction": {"geom_friction"},
    "damping": {"dof_damping"},
    "kinematic": {"jnt_range"},
    "morph": {"body_mass", "body_inertia", "geom_size", "body_pos"},
}


def test_each_mujoco_variant_changes_exactly_what_it_names():
    base = {r: make_env(f"{r}-base").unwrapped.model for r in MUJOCO_ROBOTS}
    for v in MUJOCO_VARIANTS:
        if v.kind == "base":
            continue
        m, b = _make(v.name).unwrapped.model, base[v.robot]
        changed = {f for f, get in FIELDS.items() if not np.array_equal(get(m), get(b))}
        (shift,) = v.shifts
        expected = set(CHANGES[v.kind])
        if v.kind == "morph":  # leaf segments (feet) have no child bodies to move
            limbs = {int(m.jnt_bodyid[_jid(m, j)]) for j in shift.joints}
            if not any(int(m.body_parentid[c]) in limbs for c in range(1, m.nbody)):
                expected.discard("body_pos")
        assert changed == expected, v.name
        s = shift.scale
        if v.kind == "mass" and not shift.bodies:
            np.testing.assert_array_equal(m.body_mass, b.body_mass * s)
            np.testing.assert_array_equal(m.body_inertia, b.body_inertia * s)
            assert m.body_mass.sum() == pytest.approx(s * b.body_mass.sum(), rel=1e-12)
        elif v.kind == "mass":
            t = _bid(m, "torso")
            rows = np.flatnonzero(np.any(m.body_mass[:, None] != b.body_mass[:, None], axis=1))
            assert rows.tolist() == [t]
            assert m.body_mass[t] == b.body_mass[t] * s
            np.testing.assert_array_equal(m.body_inertia[t], b.body_inertia[t] * s)
        elif v.kind == "gravity":
            np.testing.assert_array_equal(m.opt.gravity, b.opt.gravity * s)
        elif v.kind == "friction":
            np.testing.assert_array_equal(m.geom_friction, b.geom_friction * s)
        elif v.kind == "damping":
            np.testing.assert_array_equal(m.dof_damping, b.dof_damping * s)
        elif v.kind == "kinematic":
            ids = [_jid(m, j) for j in shift.joints]
            others = [j for j in range(m.njnt) if j not in ids]
            np.testing.assert_array_equal(m.jnt_range[others], b.jnt_range[others])
            for j in ids:
                (lo, hi), (blo, bhi) = m.jnt_range[j], b.jnt_range[j]
                assert m.jnt_limited[j]
                assert blo <= lo < hi <= bhi
                assert hi - lo == pytest.approx(s * (bhi - blo), rel=1e-12)
                rest = b.qpos0[b.jnt_qposadr[j]]
                assert lo <= np.clip(rest, blo, bhi) <= hi
        elif v.kind == "morph":
            bodies = sorted({int(m.jnt_bodyid[_jid(m, j)]) for j in shift.joints})
            others = [i for i in range(m.nbody) if i not in bodies]
            np.testing.assert_allclose(m.body_mass[bodies], b.body_mass[bodies] * s**3, rtol=1e-12)
            np.testing.assert_array_equal(m.body_mass[others], b.body_mass[others])
            geoms = np.isin(m.geom_bodyid, bodies)
            np.testing.assert_allclose(m.geom_size[geoms], b.geom_size[geoms] * s, rtol=1e-12)
            np.testing.assert_array_equal(m.geom_size[~geoms], b.geom_size[~geoms])


def test_pendulum_variants_change_g_m_l():
    base = make_env("pendulum-base").unwrapped
    for v in VARIANTS.values():
        if v.robot != "pendulum" or v.kind == "base":
            continue
        env = _make(v.name).unwrapped
        (shift,) = v.shifts
        attr = {"gravity": "g", "mass": "m", "length": "l"}[v.kind]
        for a in "gml":
            want = getattr(base, a) * (shift.scale if a == attr else 1.0)
            assert getattr(env, a) == pytest.approx(want), v.name


def _xml_model_like(env, edit) -> mujoco.MjModel:
    spec = mujoco.MjSpec.from_file(env.unwrapped.fullpath)
    edit(spec)
    return spec.compile()


def _model_diff(a, b) -> list[str]:
    out = []
    for name in dir(a):
        x = getattr(a, name)
        if name.startswith("_") or not isinstance(x, np.ndarray) or x.dtype.kind not in "fiub":
            continue
        y = getattr(b, name)
        if x.shape != y.shape or not np.allclose(x, y, rtol=1e-12, atol=0):
            out.append(name)
    out += [
        f"stat.{k}"
        for k in ("meaninertia", "meanmass")
        if getattr(a.stat, k) != pytest.approx(getattr(b.stat, k), rel=1e-12)
    ]
    return out


def test_mass_and_morph_match_a_recompiled_xml():
    """Editing the compiled model gives the model MuJoCo compiles from the edited XML."""

    def double_density(spec):
        for g in spec.geoms:
            g.density *= 2

    env = make_env("hopper-mass-2.0")
    assert _model_diff(env.unwrapped.model, _xml_model_like(env, double_density)) == []

    s = 0.25

    def shrink_leg(spec):
        body, p = spec.body("leg"), np.array(spec.joint("leg_joint").pos)
        for g in body.geoms:
            g.pos = p + s * (np.array(g.pos) - p)
            g.size = np.array(g.size) * s
        for c in body.bodies:
            c.pos = p + s * (np.array(c.pos) - p)

    env = make_env("hopper-morph-leg-hard")
    assert _model_diff(env.unwrapped.model, _xml_model_like(env, shrink_leg)) == []


# --------------------------------------------------------------------------- dynamics differ


def _settled_state(env):
    """A state in floor contact with some velocity: base env after random actions."""
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    d = env.unwrapped.data
    for t in range(200):
        env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        if t >= 20 and d.ncon > 0:
            break
    assert d.ncon > 0
    return d.qpos.copy(), d.qvel.copy()


def _near_old_limits(model, qpos, joints):
    """Put each joint 95% of the way from its rest pose to its farther stock limit."""
    q = qpos.copy()
    for name in joints:
        j = _jid(model, name)
        lo, hi = model.jnt_range[j]
        rest = np.clip(model.qpos0[model.jnt_qposadr[j]], lo, hi)
        far = lo if abs(lo - rest) > abs(hi - rest) else hi
        q[model.jnt_qposadr[j]] = rest + 0.95 * (far - rest)
    return q


def _rollout(env, qpos, qvel, action, steps=3):
    env.reset(seed=0)
    env.unwrapped.set_state(qpos, qvel)
    for _ in range(steps):
        obs = env.step(action)[0]
    return obs


def test_every_shifted_variant_changes_the_next_state():
    for robot in MUJOCO_ROBOTS:
        base = make_env(f"{robot}-base")
        bm = base.unwrapped.model
        qpos, qvel = _settled_state(base)
        action = np.full(base.action_space.shape, 0.3, dtype=np.float32)
        for v in MUJOCO_VARIANTS:
            if v.robot != robot or v.kind == "base":
                continue
            q = qpos
            if v.kind == "kinematic":
                q = _near_old_limits(bm, qpos, v.shifts[0].joints)
            want = _rollout(base, q, qvel, action)
            got = _rollout(_make(v.name), q, qvel, action)
            assert np.all(np.isfinite(got)), v.name
            assert np.abs(got - want).max() > 1e-4, v.name

    base = make_env("pendulum-base")
    for v in VARIANTS.values():
        if v.robot != "pendulum" or v.kind == "base":
            continue
        out = []
        for env in (base, _make(v.name)):
            env.reset(seed=0)
            env.unwrapped.state = np.array([1.0, 0.5])
            out.append(env.step(np.array([0.5], dtype=np.float32))[0])
        assert np.abs(out[0] - out[1]).max() > 1e-4, v.name


def test_kinematic_limit_bites_under_a_strong_action():
    """Driving the leg joint hard: the stock hopper bends past the hard variant's limit."""
    lows = {}
    for name in ("hopper-base", "hopper-kinematic-legjnt-hard"):
        env = make_env(name)
        env.reset(seed=0)
        m, d = env.unwrapped.model, env.unwrapped.data
        adr = m.jnt_qposadr[_jid(m, "leg_joint")]
        seen = []
        for _ in range(40):
            env.step(np.array([0.0, -1.0, 0.0], dtype=np.float32))  # bend the knee
            seen.append(d.qpos[adr])
        lows[name] = (min(seen), m.jnt_range[_jid(m, "leg_joint")][0])
    new_lo = lows["hopper-kinematic-legjnt-hard"][1]
    assert lows["hopper-base"][0] < new_lo - 1.0
    # MuJoCo limits are soft: a full-torque push overshoots by ~0.1 rad, not more
    assert lows["hopper-kinematic-legjnt-hard"][0] > new_lo - 0.15


# --------------------------------------------------------------------------- persistence


def test_shifts_persist_across_reset():
    for name in (
        "hopper-gravity-0.5",
        "hopper-mass-torso-2.0",
        "walker2d-kinematic-footjnt-hard",
        "ant-morph-alllegs-medium",
        "halfcheetah-friction-5.0",
    ):
        env = make_env(name)
        m = env.unwrapped.model
        before = {f: get(m).copy() for f, get in FIELDS.items()}
        for seed in (0, 1, 2):
            env.reset(seed=seed)
            for _ in range(5):
                env.step(env.action_space.sample())
        env.reset(seed=3)
        assert env.unwrapped.model is m
        for f, get in FIELDS.items():
            np.testing.assert_array_equal(get(m), before[f], err_msg=f"{name}: {f}")
    env = make_env("pendulum-gravity-2.0")
    for seed in (0, 1):
        env.reset(seed=seed)
        env.step(np.array([0.0], dtype=np.float32))
    assert env.unwrapped.g == pytest.approx(2 * 10.0)


# --------------------------------------------------------------------------- validation


def test_shift_specs_validate():
    with pytest.raises(ConfigError):
        KinematicShift(1.5, ("leg_joint",))
    with pytest.raises(ConfigError):
        MassShift(-1.0)
    with pytest.raises(ConfigError):
        GravityShift(float("nan"))
    model = make_env("hopper-base").unwrapped.model
    with pytest.raises(ConfigError, match="leg_joint"):
        apply_shift(model, MorphShift(0.5, ("leg_jiont",)))
    with pytest.raises(ConfigError):
        apply_shift(model, LengthShift(2.0))
    with pytest.raises(ConfigError):
        apply_shift(make_env("pendulum-base").unwrapped, FrictionShift(2.0))
    with pytest.raises(ConfigError):
        apply_shift(model, KinematicShift(0.5, ("rootx",)))  # unlimited root slide


def test_building_envs_leaves_no_mujoco_log_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    previous = mujoco.MjLogConfig.get()
    loud = mujoco.MjLogConfig.get()
    loud.logto_file = True
    loud.set()
    try:
        make_env("halfcheetah-gravity-2.0")  # stock XML warns (settotalmass) under mujoco 4.0
        assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
        assert mujoco.MjLogConfig.get().logto_file  # restored after the build
        gym.make("HalfCheetah-v5")  # the stock env does write it: the check above is real
        assert (tmp_path / "MUJOCO_LOG.TXT").exists()
    finally:
        previous.set()
