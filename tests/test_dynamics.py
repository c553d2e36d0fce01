"""The dynamics ensemble on a known linear system: it recovers the system (held-out MSE near
the noise floor), its predictive variance grows off the data, the elites are the held-out
best, early stopping works as specified, and a saved model round-trips. One tiny ensemble
is trained once for the whole module (and reused from the cache by the CLI tests)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from shiftrl.cli import app
from shiftrl.core.errors import ConfigError, DataError
from shiftrl.data.dataset import DatasetMetadata, TransitionDataset
from shiftrl.data.io import save_dataset
from shiftrl.dynamics import (
    EnsembleConfig,
    evaluate_model,
    fit_dynamics,
    load_model,
    predict,
    sample_step,
    save_model,
    uncertainty,
)
from shiftrl.dynamics.ensemble import member_mse, model_io

OBS, ACT, NOISE = 3, 2, 0.01
TINY = EnsembleConfig(members=4, elites=2, hidden=(32, 32), batch_size=64, max_epochs=80)
TINY_SET = ["members=4", "elites=2", "hidden=32,32", "batch_size=64", "max_epochs=80"]


def linear_system(seed: int = 0):
    rng = np.random.default_rng(seed)
    a = 0.9 * np.eye(OBS) + 0.05 * rng.normal(size=(OBS, OBS))
    b = 0.3 * rng.normal(size=(ACT, OBS))
    c = rng.normal(size=OBS)
    return a, b, c


def rollouts(episodes: int, length: int, seed: int) -> TransitionDataset:
    """Episodes of s' = A s + B u + noise, r = c . s + noise, u uniform in [-1, 1]^2."""
    a, b, c = linear_system()
    rng = np.random.default_rng(seed)
    s = rng.uniform(-1, 1, (episodes, OBS))
    obs, act, rew, nxt = [], [], [], []
    for _ in range(length):
        u = rng.uniform(-1, 1, (episodes, ACT))
        s2 = s @ a + u @ b + NOISE * rng.normal(size=s.shape)
        obs.append(s), act.append(u), nxt.append(s2)
        rew.append(s @ c + NOISE * rng.normal(size=episodes))
        s = s2
    f32 = [np.swapaxes(np.stack(x), 0, 1).reshape(episodes * length, -1) for x in (obs, act, nxt)]
    timeouts = np.zeros((episodes, length), bool)
    timeouts[:, -1] = True
    return TransitionDataset.from_arrays(
        f32[0].astype(np.float32),
        f32[1].astype(np.float32),
        np.swapaxes(np.stack(rew), 0, 1).reshape(-1).astype(np.float32),
        f32[2].astype(np.float32),
        np.zeros(episodes * length, bool),
        timeouts.reshape(-1),
        DatasetMetadata(name="linear", env_id=None),
    )


@pytest.fixture(scope="module")
def data():
    return rollouts(episodes=150, length=20, seed=0)


@pytest.fixture(scope="module")
def trained(data):
    return fit_dynamics(data, TINY, seed=0, progress=False)


def test_recovers_a_linear_system(trained):
    model, record = trained
    # noise floor: the targets carry N(0, 0.01^2) noise, so a perfect mean scores 1e-4
    assert float(jnp.sort(model.holdout_mse)[: TINY.elites].mean()) < 5e-4
    fresh = rollouts(episodes=50, length=20, seed=1)
    mean, _ = predict(model, jnp.asarray(fresh.observations), jnp.asarray(fresh.actions))
    elite_mean = np.asarray(mean)[np.asarray(model.elites)].mean(axis=0)
    _, targets = model_io(fresh.observations, fresh.actions, fresh.rewards, fresh.next_observations)
    truth = np.concatenate([fresh.next_observations, fresh.rewards[:, None]], axis=1)
    assert np.mean((elite_mean - truth) ** 2) < 5e-4
    assert np.mean(targets**2) > 0.1  # predicting "no change, no reward" would score this
    assert record["epochs"] > 1


def test_predicted_variance_grows_off_the_data(trained):
    model, _ = trained
    rng = np.random.default_rng(2)
    action = jnp.asarray(rng.uniform(-1, 1, (500, ACT)), jnp.float32)

    def variances(scale: float):
        obs = jnp.asarray(rng.uniform(-scale, scale, (500, OBS)), jnp.float32)
        mean, logvar = predict(model, obs, action)
        epistemic = np.asarray(mean.var(axis=0)).mean()  # members disagree
        total = epistemic + np.asarray(jnp.exp(logvar).mean(axis=0)).mean()  # mixture variance
        return epistemic, total

    on_epi, on_total = variances(1.0)  # the data's states lie within [-4, 4]
    off_epi, off_total = variances(10.0)
    assert off_epi > 20 * on_epi
    assert off_total > 5 * on_total


def test_disagreement_penalties_grow_off_the_data(trained):
    """MOPO's alternatives on the members' disagreement grow off the data; its default
    aleatoric max_k ||sigma_k|| need not on a homoscedastic system (measured, not asserted:
    0.025 on the data, 0.022 at 10x its range; docs/methods.md)."""
    model, _ = trained
    rng = np.random.default_rng(3)
    action = jnp.asarray(rng.uniform(-1, 1, (500, ACT)), jnp.float32)
    on = jnp.asarray(rng.uniform(-1, 1, (500, OBS)), jnp.float32)
    off = on * 10.0
    mean_on, logvar_on = predict(model, on, action)
    mean_off, logvar_off = predict(model, off, action)
    for mode in ("pairwise-diff", "ensemble-std"):
        u_on = float(uncertainty(mean_on, logvar_on, mode).mean())
        u_off = float(uncertainty(mean_off, logvar_off, mode).mean())
        assert u_off > 5 * u_on, mode
    ens = np.asarray(mean_on)[..., :-1]
    by_hand = np.sqrt(ens.var(axis=0).mean(axis=-1))
    np.testing.assert_allclose(uncertainty(mean_on, logvar_on, "ensemble-std"), by_hand, rtol=1e-4)
    with pytest.raises(ConfigError, match="unknown uncertainty"):
        uncertainty(mean_on, logvar_on, "max")


def test_elites_are_the_held_out_best(trained, data):
    model, record = trained
    rows = np.asarray(record["holdout_indices"])
    inputs, targets = model_io(
        data.observations[rows],
        data.actions[rows],
        data.rewards[rows],
        data.next_observations[rows],
    )
    x = (jnp.asarray(inputs) - model.input_mean) / model.input_std
    mse = np.asarray(member_mse(model.params, x, jnp.asarray(targets)))
    # the restored snapshots score exactly what was recorded for them
    np.testing.assert_allclose(mse, np.asarray(model.holdout_mse), rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(model.elites), np.argsort(mse)[: TINY.elites])
    assert len(rows) == min(int(0.2 * len(data)), 1000)


def test_early_stopping_after_five_epochs_without_improvement(trained):
    _, record = trained
    history = record["history"]
    assert record["stopped_early"] and len(history) < TINY.max_epochs
    assert all(row["improved"] == 0 for row in history[-5:])
    assert history[-6]["improved"] > 0


def test_sample_step_draws_from_an_elite_and_reports_mopo_uncertainty(trained, data):
    model, _ = trained
    obs, act = jnp.asarray(data.observations[:64]), jnp.asarray(data.actions[:64])
    next_obs, reward, uncertainty = sample_step(model, obs, act, jax.random.PRNGKey(0))
    mean, logvar = predict(model, obs, act)
    std = np.exp(0.5 * np.asarray(logvar))
    np.testing.assert_allclose(uncertainty, np.linalg.norm(std, axis=-1).max(axis=0), rtol=1e-5)
    sample = np.concatenate([next_obs, reward[:, None]], axis=1)
    # each row is within 6 standard deviations of one elite's Gaussian
    z = np.abs(sample[None] - np.asarray(mean)) / std
    assert (z.max(axis=-1)[np.asarray(model.elites)] < 6).any(axis=0).all()


def test_save_load_round_trip(trained, tmp_path):
    model, record = trained
    save_model(model, tmp_path / "m", record)
    loaded, loaded_record = load_model(tmp_path / "m")
    assert loaded.config == model.config and (loaded.obs_dim, loaded.act_dim) == (OBS, ACT)
    for a, b in zip(jax.tree.leaves(model), jax.tree.leaves(loaded), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert loaded_record["key"] == record["key"]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "ensemble.msgpack").write_bytes(b"\x80not msgpack")
    with pytest.raises(DataError, match="not a readable shiftrl dynamics model"):
        load_model(tmp_path / "bad")


def test_cache_reuses_the_trained_model_and_keys_on_settings(trained, data):
    model, record = trained
    again, again_record = fit_dynamics(data, TINY, seed=0, progress=False)
    assert again_record["reused"] and not record["reused"]
    np.testing.assert_array_equal(np.asarray(again.holdout_mse), np.asarray(model.holdout_mse))
    from shiftrl.dynamics.store import cache_key

    other = EnsembleConfig(**{**TINY.to_json(), "hidden": (32, 16)})
    assert cache_key(data.checksum(), other, 0) != record["key"]
    assert cache_key(data.checksum(), TINY, 1) != record["key"]


def test_evaluate_reports_one_step_and_k_step_errors(trained, data):
    model, record = trained
    result = evaluate_model(model, data, record, horizon=5, windows=64)
    assert result["one_step"]["split"] == "held-out"
    np.testing.assert_allclose(result["one_step"]["mse"], np.asarray(model.holdout_mse), rtol=1e-5)
    roll = np.asarray(result["rollout"]["elite_mean_state_mse"])
    assert roll.shape == (5,) and roll[0] < 5e-4 and roll[-1] < 5e-3
    assert np.asarray(result["rollout"]["member_state_mse"]).shape == (TINY.members, 5)
    other = evaluate_model(model, rollouts(10, 20, seed=3), record, horizon=5)
    assert other["one_step"]["split"] == "not trained on"


def test_config_overrides_parse_by_field_type():
    c = EnsembleConfig().with_overrides(["hidden=64,64", "max_epochs=3", "lr=3e-4"])
    assert c.hidden == (64, 64) and c.max_epochs == 3 and c.lr == 3e-4
    assert len(c.layer_decays) == 3
    assert EnsembleConfig().layer_decays == (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)
    with pytest.raises(ConfigError, match="unknown dynamics setting 'width'"):
        EnsembleConfig().with_overrides(["width=3"])
    with pytest.raises(ConfigError, match="elites must be between"):
        EnsembleConfig().with_overrides(["elites=9"])


runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_cli_train_reuses_the_cache_and_eval_reports(trained, data, tmp_path):
    save_dataset(data, tmp_path / "linear.npz")
    sets = [x for s in TINY_SET for x in ("--set", s)]
    res = run("dynamics", "train", tmp_path / "linear.npz", "--out", tmp_path / "m", *sets)
    assert res.exit_code == 0, res.output
    assert "reused the cached model" in res.output
    res = run("dynamics", "train", tmp_path / "linear.npz", "--out", tmp_path / "m", *sets)
    assert res.exit_code == 0 and "already trained" in res.output
    res = run("dynamics", "eval", tmp_path / "m", "--dataset", tmp_path / "linear.npz", "--json")
    assert res.exit_code == 0, res.output
    result = json.loads(res.output)
    assert result["one_step"]["split"] == "held-out" and result["rollout"]["horizon"] == 10
    res = run("dynamics", "eval", tmp_path / "m", "--dataset", tmp_path / "linear.npz")
    assert res.exit_code == 0 and "held-out" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "{d}/linear.npz", "--out", "{d}/m", "--set", "width=3"], "unknown dynamics"),
        (["train", "{d}/linear.npz", "--out", "{d}/m", "--set", "hidden=32"], "other data"),
        (["train", "{d}/missing.npz", "--out", "{d}/new"], "no such dataset file"),
        (["eval", "{d}/nothing", "--dataset", "{d}/linear.npz"], "no trained dynamics model"),
        (["eval", "{d}/m", "--dataset", "{d}/wide.npz"], "obs dim 6 / act dim 2"),
        (["eval", "{d}/m", "--dataset", "{d}/linear.npz", "--horizon", "50"], "shorter"),
    ],
    ids=["bad key", "other model", "missing data", "no model", "wrong dims", "long horizon"],
)
def test_cli_user_errors_are_one_line(trained, data, tmp_path, args, message):
    save_dataset(data, tmp_path / "linear.npz")
    wide = dict(data.arrays())
    for key in ("observations", "next_observations"):
        wide[key] = np.repeat(wide[key], 2, axis=1)
    np.savez(tmp_path / "wide.npz", **wide)
    model, record = trained
    save_model(model, tmp_path / "m", record)
    res = run("dynamics", *[a.format(d=tmp_path) for a in args])
    assert res.exit_code == 2, res.output
    assert "shiftrl: error:" in res.output and message in res.output
    assert "Traceback" not in res.output


def test_python_api_trains_saves_loads_and_evaluates(trained, data, tmp_path):
    import shiftrl

    settings = {k: v for k, v in TINY.to_json().items() if v != getattr(EnsembleConfig(), k)}
    model = shiftrl.train_dynamics(data, out=tmp_path / "m", progress=False, **settings)
    np.testing.assert_array_equal(np.asarray(model.elites), np.asarray(trained[0].elites))
    loaded = shiftrl.load_dynamics(tmp_path / "m")
    assert loaded.config == TINY
    result = shiftrl.evaluate_dynamics(tmp_path / "m", data, horizon=3, windows=16)
    assert result["one_step"]["split"] == "held-out" and result["rollout"]["windows"] == 16


def test_training_killed_mid_way_resumes_to_the_same_model(data, tmp_path):
    """A kill during the dynamics phase loses at most `save_every_s` of it: the next call
    continues from the saved loop state and ends with the uninterrupted result."""
    from shiftrl.dynamics.ensemble import train_ensemble

    config = EnsembleConfig(**{**TINY.to_json(), "max_epochs": 4})
    arrays = (data.observations, data.actions, data.rewards, data.next_observations)
    whole, _ = train_ensemble(*arrays, config, seed=3)

    def killed_at_epoch_3(row):
        if row["epoch"] == 3:
            raise KeyboardInterrupt  # after epoch 2's state was saved

    with pytest.raises(KeyboardInterrupt):
        train_ensemble(
            *arrays,
            config,
            seed=3,
            on_epoch=killed_at_epoch_3,
            resume_dir=tmp_path,
            save_every_s=0.0,
        )
    epochs_run = []
    resumed, report = train_ensemble(
        *arrays,
        config,
        seed=3,
        on_epoch=lambda row: epochs_run.append(row["epoch"]),
        resume_dir=tmp_path,
    )
    assert epochs_run == [3, 4] and report.epochs == 4 and len(report.history) == 4
    for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(resumed.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(whole.elites), np.asarray(resumed.elites))


def test_epoch_progress_prints_plain_lines_open_ended(monkeypatch, capsys):
    """Off a terminal the ensemble's progress is plain lines (core.progress), and without
    max_epochs (early stopping only) they show epochs done with no fraction or ETA."""
    from shiftrl.core import progress as core_progress
    from shiftrl.dynamics.ensemble import EnsembleConfig
    from shiftrl.dynamics.progress import EpochProgress

    monkeypatch.setattr(core_progress, "PLAIN_EVERY_S", 0.0)
    row = {"epoch": 3, "holdout_mse_elites": 0.0123, "epochs_since_update": 1}
    with EpochProgress(EnsembleConfig(), enabled="plain") as bar:
        bar.report(row)
    with EpochProgress(EnsembleConfig(max_epochs=10), enabled="plain") as bar:
        bar.report(row)
    with EpochProgress(EnsembleConfig(), enabled=False) as bar:
        bar.report(row)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4, lines  # one per report and one at the end, for each shown bar
    assert lines[0].startswith("shiftrl: dynamics: 3 epochs, ") and "%" not in lines[0]
    assert "held-out MSE 0.0123 (elites), no gain 1/5" in lines[0] and "ETA" not in lines[0]
    assert lines[2].startswith("shiftrl: dynamics: 3/10 epochs (30%)") and "ETA" in lines[2]
