"""Progress of dynamics-ensemble training (`shiftrl.core.progress`: a bar on a terminal,
plain lines elsewhere), one update per epoch."""

from __future__ import annotations

from shiftrl.core.progress import Progress, ProgressArg
from shiftrl.dynamics.ensemble import EnsembleConfig


class EpochProgress(Progress):
    """Epochs done (of `max_epochs`, or open-ended with early stopping only), the elites'
    held-out MSE and how many epochs have passed without a member improving."""

    def __init__(self, config: EnsembleConfig, enabled: ProgressArg = True):
        super().__init__(
            "dynamics", config.max_epochs, unit="epochs", rate_unit="epochs/s", progress=enabled
        )
        self.config = config
        self._note = "compiling"

    def report(self, row: dict) -> None:
        """One epoch's row (a resumed training starts from its saved epoch)."""
        self.note(
            f"held-out MSE {row['holdout_mse_elites']:.4g} (elites), "
            f"no gain {row['epochs_since_update']}/{self.config.max_epochs_since_update}"
        )
        self.update(row["epoch"])
