"""A progress bar for dynamics-reward learning (one tick per compiled chunk)."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shiftrl.dynamics.reward.model import RewardConfig


class RewardProgress:
    """Generator pretraining and adversarial iterations done, with the discriminator's
    accuracy and the latest snapshot's calibration gap."""

    def __init__(self, config: RewardConfig, enabled: bool = True):
        self.config = config
        self._progress = (
            Progress(
                TextColumn("[bold]dynamics reward"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
            )
            if enabled
            else None
        )
        self._task = None

    def __enter__(self) -> RewardProgress:
        if self._progress is not None:
            self._progress.__enter__()
            total = self.config.pretrain_steps + self.config.iterations
            self._task = self._progress.add_task("reward", total=total, info="compiling")
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def update(self, row: dict) -> None:
        if self._progress is None:
            return
        if row["phase"] == "pretrain":
            info = f"generator MLE loss {row['mle_loss']:.3g}"
            done = row["step"]
        else:
            gap = row["expert_value"] - row["learner_value"]
            info = f"D accuracy {row['disc_accuracy']:.2f}, calibration gap {gap:.3g}"
            done = self.config.pretrain_steps + row["step"]
        self._progress.update(self._task, completed=done, info=info)
