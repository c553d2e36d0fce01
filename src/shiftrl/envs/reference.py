"""Reference returns for normalized scores: 100 * (R - random) / (expert - random).

D4RL's published values are kept for the base robots so users can compare with
papers; variants measured by the project are added by the dataset zoo. A dataset
whose metadata carries its own reference scores always wins for its own env.
"""

from __future__ import annotations

# D4RL `d4rl/infos.py` (v0 values reused by v1/v2); keyed by the Gymnasium v5 ids we run.
D4RL_REFERENCE: dict[str, tuple[float, float]] = {
    "Hopper-v5": (-20.272305, 3234.3),
    "HalfCheetah-v5": (-280.178953, 12135.0),
    "Walker2d-v5": (1.629008, 4592.3),
    "Ant-v5": (-325.6, 3879.7),
}

# Measured by the project (random policy / best policy), see docs/datasets.md.
MEASURED_REFERENCE: dict[str, tuple[float, float]] = {}


def reference_scores(env_id: str) -> tuple[float, float] | None:
    """(random return, expert return) for `env_id`, or None when unknown."""
    from shiftrl.envs.toy import TOY_REFERENCE

    for table in (MEASURED_REFERENCE, TOY_REFERENCE, D4RL_REFERENCE):
        if env_id in table:
            return table[env_id]
    return None


def normalized_score(ret: float, ref: tuple[float, float] | None) -> float:
    if ref is None:
        return float("nan")
    low, high = ref
    return 100.0 * (ret - low) / (high - low)
