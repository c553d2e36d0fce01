"""Offline learners, one file each, registered in one explicit table."""

from __future__ import annotations

from shiftrl.core.errors import ConfigError
from shiftrl.learners.awr import AWR, AWRConfig
from shiftrl.learners.base import Hooks, Learner, LearnerSpec
from shiftrl.learners.bc import BC, BCConfig
from shiftrl.learners.bcq import BCQ, BCQConfig
from shiftrl.learners.bear import BEAR, BEARConfig
from shiftrl.learners.bracp import BRACP, BRACPConfig
from shiftrl.learners.cql import CQL, CQLConfig
from shiftrl.learners.iql import IQL, IQLConfig
from shiftrl.learners.maple import MAPLE, MAPLEConfig
from shiftrl.learners.sac import SAC, SACConfig
from shiftrl.learners.sac_context import ContextSAC, ContextSACConfig
from shiftrl.learners.td3bc import TD3BC, TD3BCConfig

LEARNERS: dict[str, type[Learner]] = {
    cls.name: cls for cls in (BC, TD3BC, IQL, CQL, SAC, BCQ, BEAR, BRACP, AWR, MAPLE)
}


ONLINE_LEARNERS: dict[str, type[Learner]] = {cls.name: cls for cls in (ContextSAC,)}
"""Recurrent (context) learners trained online by `training/online_context.py`
(`shiftrl train-online`); not offline learners."""


def get_learner(name: str) -> type[Learner]:
    key = name.lower().replace("+", "").replace("-", "").replace("_", "")
    if key not in LEARNERS:
        import difflib

        from shiftrl.recipes import RECIPES  # only for the message: recipes sit above learners

        known = [*sorted(LEARNERS), *sorted(RECIPES)]
        close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(
            f"unknown algorithm '{name}'; {hint}learners: {', '.join(sorted(LEARNERS))}; "
            f"recipes (learner + add-on): {', '.join(sorted(RECIPES))} (`shiftrl algos`)"
        )
    return LEARNERS[key]


__all__ = [
    "AWR",
    "BC",
    "BCQ",
    "BEAR",
    "BRACP",
    "CQL",
    "IQL",
    "LEARNERS",
    "MAPLE",
    "ONLINE_LEARNERS",
    "SAC",
    "TD3BC",
    "AWRConfig",
    "BCConfig",
    "BCQConfig",
    "BEARConfig",
    "BRACPConfig",
    "CQLConfig",
    "ContextSAC",
    "ContextSACConfig",
    "Hooks",
    "IQLConfig",
    "MAPLEConfig",
    "Learner",
    "SACConfig",
    "LearnerSpec",
    "TD3BCConfig",
    "get_learner",
]
