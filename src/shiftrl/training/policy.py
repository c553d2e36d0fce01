"""Trained policies: loading one from a run folder, acting, evaluating, its learning curve."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from shiftrl.addons import build_addons
from shiftrl.core.errors import ShiftRLError
from shiftrl.data.preprocess import Preprocessor
from shiftrl.envs.reference import reference_scores
from shiftrl.learners import get_learner
from shiftrl.learners.base import Learner, LearnerSpec
from shiftrl.training import checkpoint
from shiftrl.training.config import RunConfig
from shiftrl.training.evaluation import EvalResult, RecurrentPolicy, check_env_shape, evaluate
from shiftrl.training.loop import init_carry


class Policy:
    """A trained policy acting on raw environment observations."""

    def __init__(
        self,
        learner: Learner,
        learner_state: Any,
        pre: Preprocessor,
        config: RunConfig,
        references: dict[str, tuple[float, float]] | None = None,
    ):
        self.learner, self.state, self.pre, self.config = learner, learner_state, pre, config
        self.references = references or {}
        self.step: int | None = None
        """The training step of the checkpoint it was loaded from (`load_policy`)."""
        self._act = jax.jit(learner.act)
        self._recurrent = (
            RecurrentPolicy(
                jax.jit(learner.act_step),
                learner.initial_carry,
                learner_state,
                learner.spec.act_dim,
            )
            if learner.recurrent
            else None
        )

    def reset(self, n: int = 1) -> None:
        """Start n new episodes: a recurrent policy forgets its states (no-op otherwise)."""
        if self._recurrent is not None:
            self._recurrent.reset(n)

    def unit_action(self, normalized_obs: np.ndarray) -> np.ndarray:
        """Unit actions; a recurrent policy carries its states from call to call (one call
        per environment step) until `reset`."""
        if self._recurrent is not None:
            return self._recurrent(normalized_obs)
        return np.asarray(self._act(self.state, normalized_obs))

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Raw observation(s) -> environment action(s), deterministic."""
        obs = np.asarray(obs, np.float32)
        single = obs.ndim == 1
        a = self.pre.action_to_env(self.unit_action(self.pre.obs(np.atleast_2d(obs))))
        return a[0] if single else a

    def evaluate(self, env_id: str, episodes: int = 10, seed: int = 0) -> EvalResult:
        check_env_shape(env_id, self.learner.spec.obs_dim, self.learner.spec.act_dim)
        policy = self._recurrent or self.unit_action
        res = evaluate(policy, self.pre, env_id, episodes, seed, self.reference(env_id))
        if not np.isfinite(res.returns).all():
            raise ShiftRLError(f"evaluation in {env_id} gave non-finite returns")
        return res

    def reference(self, env_id: str) -> tuple[float, float] | None:
        """The run's own reference scores for its eval envs, else the registry's."""
        return self.references.get(env_id) or reference_scores(env_id)


@dataclass
class Run:
    dir: Path
    config: RunConfig
    rows: list[dict]
    policy: Policy

    def score(self, which: str = "final") -> float:
        """Mean normalized score over eval envs: at the last evaluation, or the best one
        (NaN without one: no reference scores, or a last checkpoint that is not finite)."""
        if which == "final":
            last = self.rows[-1].get("normalized_score") if self.rows else None
            return float("nan") if last is None else float(last)
        scores = [r.get("normalized_score") for r in self.rows]
        scores = [s for s in scores if s is not None]
        return float(max(scores)) if scores else float("nan")


def build_learner(config: RunConfig, obs_dim: int, act_dim: int) -> Learner:
    spec = LearnerSpec(obs_dim, act_dim, config.steps)
    return get_learner(config.algo)(config.learner, spec)


def load_policy(
    run_dir: str | Path, step: int | str | None = None, allow_nonfinite: bool = False
) -> Policy:
    """The policy of a run folder: its latest checkpoint (`step` None or "latest"), the best
    evaluation's ("best"), or a given step (the steps kept are `checkpoint_steps(run_dir)`).
    `policy.step` says which was loaded. A checkpoint holding inf / NaN (a diverged run
    trained with the guard off) is refused unless `allow_nonfinite` (research on divergence)."""
    from shiftrl.training import rundir

    run_dir = Path(run_dir)
    meta = rundir.read_meta(run_dir)
    config = rundir.run_config(meta, run_dir)
    try:
        pre = Preprocessor.from_json(meta["preprocessor"])
        learner = build_learner(config, int(meta["obs_dim"]), int(meta["act_dim"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ShiftRLError(
            f"{run_dir}/config.json: damaged run record ({type(e).__name__}: {e})"
        ) from None
    addons = build_addons(config.addons, learner)
    template = init_carry(learner, addons, learner.spec, config.seed)
    kept = checkpoint_steps(run_dir)
    if step == "best":
        step = checkpoint.best_step(run_dir)
        if step is None:
            raise ShiftRLError(
                f"{run_dir}: no best checkpoint recorded (no evaluation with a score); steps "
                f"kept: {', '.join(map(str, kept)) or 'none'}"
            )
    if step is not None and step != "latest":
        if isinstance(step, str) and not step.isdigit():
            raise ShiftRLError(f"step must be a number, 'best' or 'latest', got '{step}'")
        step = int(step)
        path = checkpoint.checkpoint_path(run_dir, step)
        if not path.exists():
            raise ShiftRLError(
                f"{run_dir}: no checkpoint at step {step}; steps kept: "
                f"{', '.join(map(str, kept)) or 'none'} (and 'best', 'latest')"
            )
        loaded, carry = checkpoint.load(path, template)
    else:
        loaded, carry = checkpoint.load_latest(run_dir, template, move_aside=False)
    if not allow_nonfinite and not checkpoint.is_finite(carry.learner):
        raise ShiftRLError(
            f"{run_dir}: the checkpoint holds inf / NaN parameters (the run diverged); load an "
            "earlier step with load_policy(run_dir, step=...)"
        )
    refs = {k: tuple(v) for k, v in meta.get("references", {}).items()}
    policy = Policy(learner, carry.learner, pre, config, refs)
    policy.step = int(loaded)
    return policy


def checkpoint_steps(run_dir: str | Path) -> list[int]:
    """The steps whose checkpoints a run folder keeps."""
    return [int(p.stem.split("_")[1]) for p in checkpoint.list_checkpoints(Path(run_dir))]


def plot_learning_curve(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    envs = sorted(
        {
            k.split("/")[1]
            for r in rows
            for k in r
            if k.startswith("eval/") and k.endswith("/normalized_score")
        }
    )
    steps = [r["step"] for r in rows]
    use_norm = any(r.get(f"eval/{e}/normalized_score") is not None for r in rows for e in envs)
    key = "normalized_score" if use_norm else "return"
    for e in envs:
        ax.plot(steps, [r.get(f"eval/{e}/{key}") for r in rows], marker="o", label=e)
    ax.set_xlabel("gradient steps")
    ax.set_ylabel("normalized score" if use_norm else "return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if envs:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
