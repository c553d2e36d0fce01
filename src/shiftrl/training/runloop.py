"""The host side of an offline run: compiled chunks of a few seconds, evaluations, logs,
checkpoints, the divergence guard's verdicts, and Ctrl-C (a checkpoint where it stops).
`training.run` builds what it needs and calls `RunLoop.run`."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from shiftrl.core.errors import DivergenceError
from shiftrl.core.interrupt import StopRequest
from shiftrl.core.progress import Progress, ProgressArg
from shiftrl.data.preprocess import Preprocessor
from shiftrl.learners.base import Learner
from shiftrl.training import checkpoint
from shiftrl.training.config import RunConfig
from shiftrl.training.evaluation import RecurrentPolicy, eval_seed, evaluate
from shiftrl.training.logger import MetricWindow, RunLogger
from shiftrl.training.loop import ChunkPacer, next_boundary, unstack_carry


@dataclass
class RunLoop:
    """What the host loop needs besides the carry: chunks, evaluations, checkpoints.
    `members` are (config, run folder, logger) per seed; `axes` (`seed_axes`): the carry
    holds them all stacked."""

    config: RunConfig
    learner: Learner
    train_chunk: Any
    data: Any
    pre: Preprocessor
    eval_envs: list[str]
    references: dict[str, list[float]]
    members: list[tuple[RunConfig, Path, RunLogger]]
    axes: Any = None

    @property
    def stacked(self) -> bool:
        return self.axes is not None

    def __post_init__(self):
        # jitted once per run; the learner state is an argument, never captured
        self.act = jax.jit(self.learner.act)
        self.act_step = jax.jit(self.learner.act_step) if self.learner.recurrent else None
        self._warned: set[int] = set()

    def member_carry(self, carry, i: int):
        return unstack_carry(carry, i, self.axes) if self.stacked else carry

    def run(
        self,
        carry,
        start: int,
        progress: ProgressArg,
        callbacks,
        stop: StopRequest,
        windows: list[MetricWindow] | None = None,
    ) -> None:
        """Train from `start` to `config.steps` in compiled chunks of a few seconds
        (`ChunkPacer`) that end exactly on evaluation and loss-log steps; `windows`: the
        training-metric sums an interrupted run saved since its last evaluation."""
        config = self.config
        windows = windows or [MetricWindow() for _ in self.members]
        since_log = [MetricWindow() for _ in self.members]
        pacer = ChunkPacer()
        title = config.algo + (f" x{len(self.members)} seeds" if self.stacked else "")
        with Progress(
            title, config.steps, start=start, progress=progress, rate_unit="updates/s"
        ) as bar:
            step, t0 = start, time.perf_counter()
            if start and self.evaluation_missing(start):  # an interrupt skipped it
                self.evaluate_and_save(carry, step, windows, callbacks, bar, t0)
                windows = [MetricWindow() for _ in self.members]
            while step < config.steps:
                limit = next_boundary(step, config.steps, config.eval_every, config.log_every)
                length = pacer.next(limit - step)
                t_chunk = time.perf_counter()
                carry, metrics, health = self.train_chunk(carry, self.data, length)
                self.check_health(health, step)
                metrics = jax.device_get(metrics)  # waits: the bar counts steps done
                pacer.done(length, time.perf_counter() - t_chunk)
                step += length
                for i in range(len(self.members)):
                    own = (
                        {k: np.asarray(v)[i] for k, v in metrics.items()}
                        if self.stacked
                        else metrics
                    )
                    windows[i].add(own, length)
                    since_log[i].add(own, length)
                bar.advance(length)
                at_eval = step % config.eval_every == 0 or step == config.steps
                if step % config.log_every == 0 or at_eval:  # training losses to TB / W&B
                    for (_, _, logger), w in zip(self.members, since_log, strict=True):
                        logger.log_scalars(step, w.means())
                    since_log = [MetricWindow() for _ in self.members]
                if stop.requested:  # before the evaluation: it would delay the stop
                    self.save_interrupted(carry, step, windows)
                    stop.check()
                if at_eval:
                    self.evaluate_and_save(carry, step, windows, callbacks, bar, t0)
                    windows = [MetricWindow() for _ in self.members]

    def evaluation_missing(self, step: int) -> bool:
        """`step` is an evaluation step whose row is not in the log (an interrupt stopped
        the run right before evaluating)."""
        config = self.config
        if step % config.eval_every and step != config.steps:
            return False
        return any(
            not any(r["step"] == step and not r.get("diverged") for r in logger.rows())
            for _, _, logger in self.members
        )

    def evaluate_and_save(self, carry, step: int, windows, callbacks, bar, t0: float) -> None:
        """Each member's evaluation row (with its training-metric means) and checkpoint."""
        config = self.config
        rows = []
        for i, (cfg, run_dir, logger) in enumerate(self.members):
            own = self.member_carry(carry, i)
            means = windows[i].means()
            row = {"step": step, **means}
            finite = config.divergence_guard or checkpoint.is_finite(own)
            if finite:
                row.update(self.evaluate(own.learner, cfg.seed))
            else:  # guard off: a non-finite policy has no score to measure
                row["nonfinite"] = True
            row["elapsed_s"] = time.perf_counter() - t0
            logger.log(row, sink_keys=[k for k in row if k not in means])
            checkpoint.save(
                run_dir,
                step,
                own,
                cfg.keep_checkpoints,
                finite=finite,
                score=row.get("normalized_score"),
            )
            rows.append(row)
            for cb in callbacks:
                cb({**row, "seed": cfg.seed} if self.stacked else row)
        mean = _mean_row(rows)
        if mean["normalized_score"] is not None:
            bar.note(f"score {mean['normalized_score']:.1f} at step {step:,}")
        elif mean["return"] is not None:
            bar.note(f"return {mean['return']:.1f} at step {step:,}")

    def save_interrupted(self, carry, step: int, windows: list[MetricWindow]) -> None:
        """Ctrl-C: each member's checkpoint of `step` (a chunk boundary), with the metric
        sums since its last evaluation, so `--resume` continues exactly from here."""
        for i, (cfg, run_dir, _) in enumerate(self.members):
            own = self.member_carry(carry, i)
            checkpoint.save(
                run_dir,
                step,
                own,
                cfg.keep_checkpoints,
                finite=checkpoint.is_finite(own),
                extra={"window": windows[i].to_json()},
            )
        self._say_saved(f"training step {step:,}")

    def save_pretraining(self, carry, done: int, interrupted: bool = True) -> None:
        """A step-0 checkpoint recording how many add-on pretraining steps are done, so
        `--resume` finishes the phase instead of redoing it (after Ctrl-C, `interrupted`,
        it says how to resume; the periodic and end-of-phase saves are silent)."""
        for i, (cfg, run_dir, _) in enumerate(self.members):
            own = self.member_carry(carry, i)
            checkpoint.save(
                run_dir, 0, own, cfg.keep_checkpoints, extra={"pretrain_done": int(done)}
            )
        if interrupted:
            self._say_saved(f"pretraining step {done:,}")

    def _say_saved(self, where: str) -> None:
        dirs = [d for _, d, _ in self.members]
        if self.stacked:
            seeds = ",".join(str(c.seed) for c, _, _ in self.members)
            how = f"shiftrl train --resume --out {dirs[0].parent} --seeds {seeds}"
        else:
            how = f"shiftrl train --resume --out {dirs[0]}"
        print(
            f"shiftrl: saved a checkpoint at {where}; continue with `{how}`",
            file=sys.stderr,
            flush=True,
        )

    def check_health(self, health: dict, chunk_start: int) -> None:
        """The divergence guard's verdict on one chunk: a member whose losses or parameters
        went non-finite stops the run with one line (or, guard off, one warning), its
        metrics marked; the checkpoints on disk are all finite and stay."""
        finite = np.atleast_1d(np.asarray(health["finite"]))
        if finite.all():
            return
        for i in np.flatnonzero(~finite):
            cfg, run_dir, logger = self.members[i]
            pick = (lambda x, i=i: np.asarray(x)[i]) if self.stacked else np.asarray
            at_step = chunk_start + int(pick(health["first_bad"])) + 1
            culprit = _culprit({k: float(pick(v)) for k, v in health["at_bad"].items()})
            seed = f" (seed {cfg.seed})" if self.stacked else ""
            what = f"training diverged at step {at_step}{seed}: {culprit}"
            if not self.config.divergence_guard:
                if i not in self._warned:
                    self._warned.add(i)
                    print(
                        f"shiftrl: warning: {what}; divergence_guard is off, training on",
                        file=sys.stderr,
                    )
                continue
            losses = {k: v for k, v in health["at_bad"].items() if "loss" in k}
            logger.log(
                {
                    "step": at_step,
                    "diverged": True,
                    "diverged_reason": culprit,
                    **{k: float(pick(v)) for k, v in losses.items()},
                }
            )
            last = checkpoint.latest(run_dir)
            kept = (
                f"the last finite checkpoint ({last.name}) is kept"
                if last
                else ("no checkpoint had been written yet")
            )
            raise DivergenceError(
                f"{what}; {kept}. Lower the learning rates, or --set divergence_guard=false "
                "to train on regardless"
            )

    def evaluate(self, learner_state, seed: int) -> dict[str, Any]:
        """Per-env returns and normalized scores, plus their averages over the eval envs."""
        if not self.eval_envs:
            return {}

        def policy(obs):
            return np.asarray(self.act(learner_state, obs))

        if self.learner.recurrent:  # states carried through each episode, reset at its start
            learner = self.learner
            policy = RecurrentPolicy(
                self.act_step, learner.initial_carry, learner_state, learner.spec.act_dim
            )

        start = eval_seed(seed)  # the same start states at every evaluation (and online)
        row, scores, returns = {}, [], []
        for env_id in self.eval_envs:
            ref = self.references.get(env_id)
            res = evaluate(
                policy,
                self.pre,
                env_id,
                self.config.eval_episodes,
                start,
                tuple(ref) if ref else None,
            )
            row.update({f"eval/{env_id}/{k}": v for k, v in res.to_json().items() if k != "env"})
            returns.append(res.mean_return)
            if not np.isnan(res.normalized):
                scores.append(res.normalized)
        row["normalized_score"] = float(np.mean(scores)) if scores else None
        row["return"] = float(np.mean(returns))
        return row


def _culprit(losses: dict[str, float]) -> str:
    """Which loss gave out, for the divergence line: the non-finite ones, else (the update
    itself overflowed the parameters) the largest loss of that step."""
    # an inf names the culprit best; a NaN may also mark a skipped sub-step (TD3's actor)
    bad = [k for k, v in losses.items() if np.isinf(v)]
    bad = bad or [k for k, v in losses.items() if np.isnan(v) and "loss" in k]
    if bad:
        return ", ".join(f"{k} = {losses[k]}" for k in bad[:3]) + " (non-finite)"
    finite = {k: v for k, v in losses.items() if np.isfinite(v) and "loss" in k}
    if finite:
        name = max(finite, key=lambda k: abs(finite[k]))
        return f"parameters became non-finite in the update after {name} = {finite[name]:.3g}"
    return "parameters became non-finite"


def _mean_row(rows: list[dict]) -> dict:
    """The seeds' mean score and return, for the progress bar."""
    out = {}
    for key in ("normalized_score", "return"):
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    return out
