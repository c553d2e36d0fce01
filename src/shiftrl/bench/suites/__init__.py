"""Benchmark suites, one module per suite (see `spec.py` for the format).

from shiftrl.bench.suites import get_suite, suite_names
get_suite("smoke").cells
"""

from __future__ import annotations

import difflib
import importlib

from shiftrl.bench.suites.spec import (
    PROFILES,
    Budget,
    Cell,
    Learner,
    Online,
    OnlineBudget,
    Suite,
    TableLayout,
    learner_algo,
    net_overrides,
)
from shiftrl.core.errors import ConfigError

SUITE_MODULES = ("smoke", "locomotion", "dara", "srpo", "spot", "ssar", "o2o", "mb", "morec")


def suite_names() -> list[str]:
    return list(SUITE_MODULES)


def get_suite(name: str) -> Suite:
    """The suite defined in `shiftrl/bench/suites/<name>.py` (its `SUITE`)."""
    if name not in SUITE_MODULES:
        close = difflib.get_close_matches(name, SUITE_MODULES, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(f"unknown suite '{name}'; {hint}available: {', '.join(SUITE_MODULES)}")
    return importlib.import_module(f"shiftrl.bench.suites.{name}").SUITE


__all__ = [
    "PROFILES",
    "SUITE_MODULES",
    "Budget",
    "Cell",
    "Learner",
    "Online",
    "OnlineBudget",
    "Suite",
    "TableLayout",
    "get_suite",
    "learner_algo",
    "net_overrides",
    "suite_names",
]
