"""Progress of dynamics-reward learning (`shiftrl.core.progress`: a bar on a terminal, plain
lines elsewhere), one update per compiled chunk."""

from __future__ import annotations

from shiftrl.core.progress import Progress, ProgressArg
from shiftrl.dynamics.reward.model import RewardConfig


class RewardProgress(Progress):
    """Generator pretraining and adversarial iterations done, with the discriminator's
    accuracy and the latest snapshot's calibration gap."""

    def __init__(self, config: RewardConfig, enabled: ProgressArg = True):
        super().__init__(
            "dynamics reward",
            config.pretrain_steps + config.iterations,
            unit="iterations",
            rate_unit="iterations/s",
            progress=enabled,
        )
        self.config = config

    def report(self, row: dict) -> None:
        """One chunk's last row: where training is and how the adversaries stand."""
        if row["phase"] == "pretrain":
            self.note(f"generator MLE loss {row['mle_loss']:.3g}")
            self.update(row["step"])
        else:
            gap = row["expert_value"] - row["learner_value"]
            self.note(f"D accuracy {row['disc_accuracy']:.2f}, calibration gap {gap:.3g}")
            self.update(self.config.pretrain_steps + row["step"])
