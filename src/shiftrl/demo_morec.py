"""`shiftrl demo morec`: MOREC's refrigerator experiment, minutes on a 2-core CPU.

1. Offline data: 4 episodes x 2,000 steps of the behaviour P-controller
   (`shiftrl.envs.refrigerator`), temperatures in about [-2.5, 10] C, power <= ~3.
2. A dynamics ensemble (MOPO / MOBILE's: 7 members, 5 elites) on [T, (u, door)] and the
   dynamics reward r_D(T, u, T') with the door as its hidden-factor channel z, both
   learned from those data only.
3. The test controller (set-point -8 C, gain 0.5) runs 2,000 steps in the true system. From
   every 10th step of that trajectory the model rolls out 100 steps with the test
   controller in the loop (and the true door schedule), each step:
   - "plain": a random elite's Gaussian sample (MOPO / MOBILE's step);
   - "filtered": 5 elites x 2 samples = 10 candidates, the one with the highest r_D
     (MOREC's `select`); "softmax": drawn from softmax(r_D / 0.1).
   MAE per horizon |T_model(h) - T_true(h)|, averaged over the start points.
4. Figures: the trajectories, MAE per horizon, and r_D over (T, T') for three powers
   against the true transition and the ensemble's elite means.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from shiftrl.dynamics.ensemble import DynamicsModel, EnsembleConfig, predict, train_ensemble
from shiftrl.dynamics.reward import DynamicsReward, RewardConfig, dynamics_reward, select_candidates
from shiftrl.dynamics.reward.train import train_dynamics_reward
from shiftrl.envs import refrigerator as fridge

MODES = ("plain", "filtered", "softmax")
SHOWN_HORIZONS = (1, 5, 10, 25, 50, 100)


@dataclass(frozen=True)
class DemoSettings:
    episodes: int = 4
    steps: int = 2000
    test_steps: int = 2000
    horizon: int = 100
    start_every: int = 10
    resamples: int = 2
    ensemble: EnsembleConfig = EnsembleConfig()
    reward: RewardConfig = RewardConfig(z_dim=1)
    seed: int = 0


QUICK = DemoSettings(
    episodes=2,
    steps=1000,
    test_steps=400,
    horizon=30,
    start_every=10,
    ensemble=EnsembleConfig(members=5, elites=3, hidden=(64, 64), max_epochs=60),
    reward=RewardConfig(
        z_dim=1,
        state_encoder=(64, 32),
        delta_encoder=(64, 16),
        discriminator=(64, 64),
        generator=(64, 64),
        iterations=1500,
        snapshot_every=50,
        batch_size=128,
    ),
)
"""Small networks and few steps (tests)."""


def fit_models(
    data: dict, settings: DemoSettings, progress: bool = False
) -> tuple[DynamicsModel, DynamicsReward, dict]:
    """The ensemble (inputs T and (u, door)) and r_D (z = door), with their training times."""
    from shiftrl.dynamics.progress import EpochProgress
    from shiftrl.dynamics.reward.progress import RewardProgress

    t0 = time.perf_counter()
    with EpochProgress(settings.ensemble, enabled=progress) as bar:
        model, _ = train_ensemble(
            data["obs"],
            np.concatenate([data["action"], data["door"]], axis=1),
            data["reward"],
            data["next_obs"],
            settings.ensemble,
            seed=settings.seed,
            on_epoch=bar.report,
        )
    t1 = time.perf_counter()
    with RewardProgress(settings.reward, enabled=progress) as bar:
        reward, report = train_dynamics_reward(
            data["obs"],
            data["action"],
            data["next_obs"],
            settings.reward,
            settings.seed,
            z=data["door"],
            on_chunk=bar.report,
        )
    t2 = time.perf_counter()
    return (
        model,
        reward,
        {
            "ensemble_seconds": round(t1 - t0, 1),
            "reward_seconds": round(t2 - t1, 1),
            "reward_snapshots_calibrated": report.calibrated,
        },
    )


def _controller(temperature: jax.Array) -> jax.Array:
    return jnp.clip(0.5 * (temperature + 8.0), 0.0, fridge.U_MAX)  # fridge.evaluation_controller


@partial(jax.jit, static_argnames=("mode", "horizon", "resamples"))
def model_rollouts(model, reward, starts, doors, rng, mode: str, horizon: int, resamples: int):
    """Temperatures [S, horizon] predicted from `starts` [S] under the test controller, the
    door schedule `doors` [S, horizon] given, one step = `mode` (see the module doc), and
    the r_D of each chosen transition [S, horizon] (for "plain" too)."""

    def step(temp, inputs):
        door, key = inputs
        k_noise, k_pick = jax.random.split(key)
        obs, power = temp[:, None], _controller(temp)[:, None]
        mean, logvar = predict(model, obs, jnp.concatenate([power, door[:, None]], axis=1))
        mean, std = mean[model.elites, :, :1], jnp.exp(0.5 * logvar[model.elites, :, :1])
        cands = mean + std * jax.random.normal(k_noise, (resamples, *mean.shape))
        cands = cands.reshape(-1, *mean.shape[1:])  # [C, S, 1]
        scores = dynamics_reward(reward, obs[None], power[None], cands, z=door[None, :, None])
        if mode == "plain":  # a random elite's sample (the first resample of each elite)
            pick = jax.random.randint(k_pick, temp.shape, 0, mean.shape[0])
        else:
            rule = "select" if mode == "filtered" else "softmax"
            pick = select_candidates(scores, rule, k_pick, kappa=0.1)
        rows = jnp.arange(temp.shape[0])
        nxt = cands[pick, rows, 0]
        return nxt, (nxt, scores[pick, rows])

    keys = jax.random.split(rng, horizon)
    _, (temps, chosen) = jax.lax.scan(step, starts, (doors.T, keys))
    return temps.T, chosen.T


def rollout_errors(
    model, reward, test: dict, settings: DemoSettings, modes=MODES
) -> dict[str, np.ndarray]:
    """Per mode, |T_model(h) - T_true(h)| [starts, horizon] along the test trajectory."""
    return {k: v for k, v in rollouts_with_reward(model, reward, test, settings, modes).items()
            if "/" not in k}  # fmt: skip


def rollouts_with_reward(model, reward, test, settings: DemoSettings, modes=MODES, threshold=0.6):
    """`rollout_errors` plus, per mode, "<mode>/alive" [starts, horizon]: whether MOREC's
    threshold (r_D >= `threshold` at every earlier step) would still be rolling that start
    out at step h (the demo's rollouts run on regardless, to show where they go)."""
    h = settings.horizon
    t0 = np.arange(0, len(test["power"]) - h, settings.start_every)
    idx = t0[:, None] + np.arange(h)[None]
    starts, doors = test["temperature"][t0], test["door"][idx]
    truth = test["temperature"][idx + 1]
    out = {}
    for i, mode in enumerate(modes):
        pred, chosen = model_rollouts(model, reward, jnp.asarray(starts), jnp.asarray(doors),
                                      jax.random.PRNGKey(settings.seed + i), mode, h,
                                      settings.resamples)  # fmt: skip
        out[mode] = np.abs(np.asarray(pred) - truth)
        ok = np.asarray(chosen) >= threshold
        # alive at step h: no step before h ended the rollout (step h itself is kept)
        out[f"{mode}/alive"] = np.concatenate(
            [np.ones((len(t0), 1), bool), np.cumprod(ok, axis=1)[:, :-1].astype(bool)], axis=1
        )
    return out


def run_morec_demo(
    out: Path,
    settings: DemoSettings = DemoSettings(),
    console=None,
    models=None,
    progress: bool = True,
) -> dict:
    """Run the experiment, write figures and `results.json` into `out`; returns the numbers.
    `models`: an (ensemble, dynamics reward) pair fitted before, instead of fitting them."""
    from rich.console import Console

    console = console or Console()
    out.mkdir(parents=True, exist_ok=True)
    data = fridge.offline_data(settings.episodes, settings.steps, settings.seed)
    test = fridge.run(fridge.evaluation_controller, settings.test_steps, settings.seed + 1000)
    console.print(
        f"[bold]refrigerator[/]: {len(data['obs'])} behaviour transitions, T in "
        f"[{data['obs'].min():.1f}, {data['obs'].max():.1f}], power <= {data['action'].max():.1f}; "
        f"test controller: T in [{test['temperature'].min():.1f}, {test['temperature'].max():.1f}], "
        f"power <= {test['power'].max():.1f}"
    )
    console.print("fitting the dynamics ensemble and the dynamics reward ...")
    if models is None:
        from shiftrl.dynamics.reward import save_reward
        from shiftrl.dynamics.store import save_model

        model, reward, timing = fit_models(data, settings, progress=progress)
        # kept for inspection and re-runs: load_model / load_reward, then models=(...)
        save_model(model, out / "models" / "ensemble", {"demo": "morec", **timing})
        save_reward(reward, out / "models" / "dynamics-reward", {"demo": "morec", **timing})
    else:
        (model, reward), timing = models, {}
    full = rollouts_with_reward(model, reward, test, settings)
    errors = {k: v for k, v in full.items() if "/" not in k}
    shown = [h for h in SHOWN_HORIZONS if h <= settings.horizon]
    mae = {mode: {h: float(e[:, h - 1].mean()) for h in shown} for mode, e in errors.items()}
    median = {m: {h: float(np.median(e[:, h - 1])) for h in shown} for m, e in errors.items()}
    alive = {m: {h: float(full[f"{m}/alive"][:, h - 1].mean()) for h in shown} for m in errors}
    mae_alive = {
        m: {
            h: float(e[full[f"{m}/alive"][:, h - 1], h - 1].mean())
            if full[f"{m}/alive"][:, h - 1].any()
            else None
            for h in shown
        }
        for m, e in errors.items()
    }
    results = {
        "settings": {
            "episodes": settings.episodes,
            "steps": settings.steps,
            "test_steps": settings.test_steps,
            "horizon": settings.horizon,
            "start_every": settings.start_every,
            "seed": settings.seed,
        },
        "data_range": [float(data["obs"].min()), float(data["obs"].max())],
        "test_range": [float(test["temperature"].min()), float(test["temperature"].max())],
        "mae": mae,
        "median_abs_error": median,
        "alive": alive,
        "mae_alive": mae_alive,
        "mae_all_horizons": {m: float(e.mean()) for m, e in errors.items()},
        **timing,
    }
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    alive_steps = {m: full[f"{m}/alive"] for m in errors}
    plot_results(out, model, reward, data, test, errors, alive_steps, settings)
    from rich.table import Table

    table = Table(title="MAE (C) of model rollouts under the test controller, by horizon")
    table.add_column("rollout step")
    for h in shown:
        table.add_column(f"h={h}", justify="right")
    for mode in MODES:
        table.add_row(mode, *[f"{mae[mode][h]:.2f}" for h in shown])
    for mode in MODES:
        table.add_row(
            f"{mode}, alive only",
            *[f"{v:.2f}" if (v := mae_alive[mode][h]) is not None else "-" for h in shown],
        )
    for mode in MODES:
        table.add_row(f"{mode}, share alive", *[f"{alive[mode][h]:.2f}" for h in shown])
    console.print(table)
    console.print(f"figures and results.json in {out}")
    return results


def plot_results(
    out: Path, model, reward, data, test, errors, alive, settings: DemoSettings
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"plain": "tab:red", "filtered": "tab:blue", "softmax": "tab:green"}
    # 1. the first start point's rollouts against the truth
    h = settings.horizon
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(
        np.arange(h + 1), test["temperature"][: h + 1], "k", lw=2, label="true (test controller)"
    )
    for i, mode in enumerate(MODES):
        pred, _ = model_rollouts(model, reward, jnp.asarray(test["temperature"][:1]),
                              jnp.asarray(test["door"][None, :h]), jax.random.PRNGKey(settings.seed + i),
                              mode, h, settings.resamples)  # fmt: skip
        ax.plot(np.arange(h + 1), np.r_[test["temperature"][0], np.asarray(pred)[0]],
                color=colors[mode], label=f"model, {mode}")  # fmt: skip
    ax.axhspan(
        *[float(data["obs"].min()), float(data["obs"].max())], color="0.9", label="data's T range"
    )
    ax.set(
        xlabel="step",
        ylabel="temperature (C)",
        title="Rollout from T = 10 under the test controller",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "trajectory.png", dpi=120)
    plt.close(fig)
    # 2. MAE per horizon, and the share of rollouts MOREC's threshold would keep
    fig, (ax, ax_alive) = plt.subplots(1, 2, figsize=(11, 3.5))
    for mode, e in errors.items():
        ax.plot(np.arange(1, h + 1), e.mean(0), color=colors[mode], label=mode)
        ax_alive.plot(np.arange(1, h + 1), alive[mode].mean(0), color=colors[mode], label=mode)
    starts = len(next(iter(errors.values())))
    ax.set(xlabel="horizon (steps)", ylabel="MAE (C)", yscale="log",
           title=f"Rollouts under the test controller ({starts} starts)")  # fmt: skip
    ax_alive.set(xlabel="horizon (steps)", ylabel="share", ylim=(0, 1.05),
                 title="Rollouts not yet ended by r_D < 0.6")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "mae.png", dpi=120)
    plt.close(fig)
    # 3. r_D over (T, T') at three powers, door closed
    temps = np.linspace(-12, 12, 121, dtype=np.float32)
    nexts = np.linspace(-14, 14, 141, dtype=np.float32)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for ax, power in zip(axes, (0.5, 3.0, 8.0), strict=True):
        tt, nn = np.meshgrid(temps, nexts)
        obs, nxt = tt.reshape(-1, 1), nn.reshape(-1, 1)
        act = np.full_like(obs, power)
        r = np.asarray(dynamics_reward(reward, obs, act, nxt, z=np.zeros_like(obs))).reshape(
            tt.shape
        )
        im = ax.pcolormesh(temps, nexts, r, shading="auto", cmap="viridis", vmin=0.31, vmax=1.32)
        true = fridge.step(temps, power, np.zeros_like(temps), 0.0)
        ax.plot(temps, true, "w--", lw=2, label="true T'")
        mean, _ = predict(
            model, temps[:, None], np.stack([np.full_like(temps, power), np.zeros_like(temps)], 1)
        )
        ax.plot(temps, np.asarray(mean[model.elites, :, 0]).mean(0), color="tab:red", lw=1.5,
                label="ensemble (elite mean)")  # fmt: skip
        ax.contour(temps, nexts, r, levels=[0.6], colors="orange", linewidths=1)
        ax.plot([], [], color="orange", lw=1, label="r_D = 0.6 (threshold)")
        seen = (data["action"][:, 0] > power - 0.25) & (data["action"][:, 0] < power + 0.25)
        if seen.any():
            ax.axvspan(
                float(data["obs"][seen].min()),
                float(data["obs"][seen].max()),
                color="w",
                alpha=0.15,
            )
        ax.set(
            xlabel="T (C)",
            title=f"r_D(T, u = {power:g}, T'), door closed",
            ylim=(nexts[0], nexts[-1]),
        )
    axes[0].set_ylabel("T' (C)")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.colorbar(im, ax=axes, label="r_D")
    fig.savefig(out / "reward_map.png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def quick_settings(**changes) -> DemoSettings:
    return replace(QUICK, **changes)
