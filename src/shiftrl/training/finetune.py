"""Offline-to-online fine-tuning of a trained run, in its own or another (shifted) environment.

    shiftrl finetune runs/iql-hopper --online-steps 100000 --env shiftrl/hopper-mass-2.0-v0

The offline learner state, its preprocessing and (by default) its offline data as the
initial replay buffer carry over, as in CORL's fine-tuning scripts; the learner keeps its
losses and acts with `learner.explore`. Learners with schedules over the run (IQL's cosine
actor learning rate) are rebuilt for offline + online steps, so the schedule continues
instead of sitting at its end. A run's add-ons carry over with their own online schedule
(`AddOn.online_step`: SPOT anneals lambda to 20%, SSAR scales its frozen beta(s) down)
and their preferred replay; add-ons without an online phase (DARA, SRPO) are refused.

Replay at the switch (`replay`): "all" (the offline data prefill the buffer, CORL),
"part" (only the `top` best offline trajectories by return, SSAR's default), "half"
(offline data kept apart and half of every batch drawn from them), "none".

Reported: the normalized score before fine-tuning, after it, and the regret as CORL defines
it: the mean over online evaluations of (1 - normalized score / 100), so lower is better.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shiftrl.core.errors import ConfigError, ShiftRLError
from shiftrl.core.progress import ProgressArg
from shiftrl.data.preprocess import Preprocessor
from shiftrl.training import checkpoint, rundir
from shiftrl.training.evaluation import check_env_shape, eval_seed, evaluate
from shiftrl.training.loop import init_carry
from shiftrl.training.online import OnlineConfig, train_online

REPLAY_MODES = ("all", "part", "half", "none")


def top_trajectories(data, count: int):
    """The `count` offline episodes with the highest returns (SSAR's 'part' replay)."""
    returns = data.episode_returns()
    best = np.sort(np.argsort(returns)[::-1][:count])
    return data.select_episodes(best)


@dataclass
class FinetuneResult:
    out: Path
    env_id: str
    score_before: float
    score_after: float
    regret: float
    rows: list[dict]

    def to_json(self) -> dict:
        return {
            "out": str(self.out),
            "env": self.env_id,
            "score_before": self.score_before,
            "score_after": self.score_after,
            "regret": self.regret,
        }


def finetune(
    run_dir: str | Path,
    online_steps: int,
    env_id: str | None = None,
    out: str | Path | None = None,
    prefill: bool = True,
    eval_every: int = 10_000,
    eval_episodes: int = 10,
    utd: float = 1.0,
    steps_per_iter: int = 1000,
    seed: int | None = None,
    progress: ProgressArg = True,
    resume: bool = False,
    replay: str | None = None,
    top: int | None = None,
    warmup: int | None = None,
) -> FinetuneResult:
    from shiftrl.addons import build_addons
    from shiftrl.data.io import load_recorded
    from shiftrl.training.run import build_learner

    run_dir = Path(run_dir)
    meta = rundir.read_meta(run_dir)
    if online_steps <= 0 or online_steps % steps_per_iter:
        raise ConfigError(f"--online-steps must be a positive multiple of {steps_per_iter}")
    checks = [
        (eval_every >= 1, f"--eval-every must be at least 1, got {eval_every}"),
        (eval_episodes >= 1, f"--eval-episodes must be at least 1, got {eval_episodes}"),
        (top is None or top >= 1, f"--top must be at least 1, got {top}"),
        (warmup is None or warmup >= 0, f"--warmup must be 0 or more, got {warmup}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    config = rundir.run_config(meta, run_dir)
    env_id = check_env_shape(
        env_id or (meta.get("eval_envs") or [None])[0] or "",
        int(meta["obs_dim"]),
        int(meta["act_dim"]),
    )
    try:
        pre = Preprocessor.from_json(meta["preprocessor"])
    except (KeyError, TypeError, ValueError) as e:
        raise ShiftRLError(f"{run_dir}/config.json: damaged preprocessor record ({e})") from None

    # rebuild with the longer horizon, so run-length schedules continue
    longer = dataclasses.replace(config, steps=config.steps + online_steps)
    learner = build_learner(longer, meta["obs_dim"], meta["act_dim"])
    addons = build_addons(config.addons, learner)
    offline_only = [ad.name for ad in addons if not ad.finetune_supported]
    if offline_only:
        raise ConfigError(
            f"add-on {', '.join(offline_only)} has no online phase; fine-tune a run without it"
        )
    replay = replay or next((ad.finetune_replay for ad in addons if ad.finetune_replay), "all")
    if warmup is None:  # the method's own (SSAR: 5,000 policy steps), else none
        warmup = max((ad.finetune_warmup for ad in addons), default=0)
    if not prefill:
        replay = "none"
    if replay not in REPLAY_MODES:
        raise ConfigError(f"--replay must be one of {', '.join(REPLAY_MODES)}, got '{replay}'")
    top = top or next((getattr(ad, "top_trajectories", 0) for ad in addons), 0) or 50
    template = init_carry(learner, addons, learner.spec, config.seed)
    if checkpoint.latest(run_dir) is None:
        raise ShiftRLError(f"{run_dir}: no checkpoint to fine-tune")
    _, carry = checkpoint.load_latest(run_dir, template, move_aside=False)
    if not checkpoint.is_finite(carry):
        raise ShiftRLError(f"{run_dir}: the checkpoint holds inf / NaN values (the run diverged)")

    reference = {k: tuple(v) for k, v in meta.get("references", {}).items()}.get(env_id)

    online_seed = config.seed if seed is None else seed

    def score(state) -> float:
        import jax

        act = jax.jit(learner.act)
        # the start states of the online evaluations (and, for the run's own seed, of its
        # offline ones), so "before" and "after" differ by the policy only
        start = eval_seed(online_seed)
        res = evaluate(
            lambda o: np.asarray(act(state, o)), pre, env_id, eval_episodes, start, reference
        )
        return res.normalized

    before = score(carry.learner)
    data = None
    if replay != "none":
        from shiftrl.training.run import select_target

        hint = (
            "fine-tune with --no-prefill (prefill=False), or save the data "
            "(shiftrl.data.io.save_npz) and train from the file"
        )
        what = str(run_dir)
        target = select_target(config, load_recorded(config.dataset, what, hint))
        sources = [load_recorded(s, what, hint) for s in config.sources]
        from shiftrl.data.dataset import concatenate

        if [d.checksum() for d in (target, *sources)] != meta["checksums"]:
            raise ShiftRLError(
                f"the offline data of {run_dir} ('{config.dataset}') cannot be reloaded as trained on "
                "(checksum mismatch); fine-tune with --no-prefill"
            )
        data = concatenate([target, *sources]) if sources else target
        if replay == "part":
            data = top_trajectories(data, top)
    online = OnlineConfig(
        env_id=env_id,
        total_steps=online_steps,
        num_envs=1,
        start_steps=0,
        steps_per_iter=steps_per_iter,
        utd=utd,
        batch_size=config.batch_size,
        buffer_size=max(2_000_000, (len(data) if data is not None else 0) + online_steps),
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        checkpoint_every=eval_every,
        seed=online_seed,
        learning_starts=warmup,
        offline_fraction=0.5 if replay == "half" else 0.0,
    )
    # one default folder per environment, so fine-tuning in other dynamics never collides
    env_slug = env_id.removeprefix("shiftrl/").replace("/", "_")
    out = Path(out) if out is not None else run_dir.parent / f"{run_dir.name}-finetune-{env_slug}"
    rows = train_online(
        learner,
        online,
        out,
        pre=pre,
        init_state=carry.learner,
        prefill_data=data if replay in ("all", "part") else None,
        offline_data=data if replay == "half" else None,
        addons=addons,
        addon_states=carry.addons,
        resume=resume,
        progress=progress,
        extra_meta={
            "finetuned_from": str(run_dir),
            "offline_config": meta["config"],
            "replay": replay,
            "references": {env_id: reference},
        },
        reference=reference,
    )
    scores = [r["normalized_score"] for r in rows if r.get("normalized_score") is not None]
    result = FinetuneResult(
        out,
        env_id,
        before,
        scores[-1] if scores else float("nan"),
        float(np.mean([1 - s / 100 for s in scores])),
        rows,
    )
    (out / "finetune.json").write_text(json.dumps(result.to_json(), indent=2))
    return result
