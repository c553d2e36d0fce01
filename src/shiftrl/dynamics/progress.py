"""A progress bar for dynamics-model training (one tick per epoch)."""

from __future__ import annotations

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from shiftrl.dynamics.ensemble import EnsembleConfig


class EpochProgress:
    """Epochs done (of `max_epochs`, or open-ended with early stopping only), the elites'
    held-out MSE and how many epochs have passed without a member improving."""

    def __init__(self, config: EnsembleConfig, enabled: bool = True):
        self.config = config
        self._progress = (
            Progress(
                TextColumn("[bold]dynamics"),
                BarColumn(),
                TextColumn("epoch {task.completed}"),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
            )
            if enabled
            else None
        )
        self._task = None

    def __enter__(self) -> EpochProgress:
        if self._progress is not None:
            self._progress.__enter__()
            self._task = self._progress.add_task(
                "dynamics", total=self.config.max_epochs, info="compiling"
            )
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def update(self, row: dict) -> None:
        if self._progress is None:
            return
        info = (
            f"held-out MSE {row['holdout_mse_elites']:.4g} (elites), "
            f"no gain {row['epochs_since_update']}/{self.config.max_epochs_since_update}"
        )
        self._progress.update(
            self._task, completed=row["epoch"], info=info
        )  # resumed: from its epoch
