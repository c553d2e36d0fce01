"""Add-ons: shift methods and regularizers that plug into any learner (see base.py).

The registry maps a name to a factory taking the recorded settings; method issues
(DARA, SRPO, SPOT, SSAR, MOREC) add their entries here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from shiftrl.addons.base import AddOn, AddOnContext
from shiftrl.core.errors import ConfigError

ADDONS: dict[str, Callable[..., AddOn]] = {}


def build_addons(specs: Sequence[dict[str, Any]]) -> tuple[AddOn, ...]:
    """Add-on objects from their config.json records ({"name": ..., **settings})."""
    out = []
    for spec in specs:
        settings = dict(spec)
        name = settings.pop("name", None)
        if name not in ADDONS:
            raise ConfigError(
                f"unknown add-on '{name}'; available: {', '.join(sorted(ADDONS)) or 'none'}"
            )
        out.append(ADDONS[name](**settings))
    return tuple(out)


__all__ = ["ADDONS", "AddOn", "AddOnContext", "build_addons"]
