"""Progress of a dataset build (`shiftrl.core.progress`: a bar on a terminal, plain lines
elsewhere), in transitions (or, for NeoRL-like builds, trajectories) collected, then
"saving"."""

from __future__ import annotations

from shiftrl.core.progress import Progress, ProgressArg


class MakeProgress(Progress):
    """Progress of making one dataset (on stderr); nothing when `enabled` is False."""

    def __init__(
        self,
        dataset_id: str,
        total: int,
        enabled: ProgressArg = True,
        unit: str = "transitions",
    ):
        super().__init__(
            f"making {dataset_id}",
            total,
            unit=unit,
            rate_unit=f"{unit}/s",
            progress=enabled,
        )
        self.dataset_id = dataset_id

    def saving(self) -> None:
        self.update(self.total)
        self.describe(f"saving {self.dataset_id}")
