"""Add-ons: shift methods and regularizers that plug into any learner (see base.py).

The registry maps a name to a factory taking the recorded settings; method issues
(DARA, SRPO, SPOT, SSAR, MOPO, MOBILE, MOREC-MOPO, MOREC-MOBILE, MAPLE's segments) add their entries here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from shiftrl.addons.base import AddOn, AddOnContext
from shiftrl.addons.dara import DARA
from shiftrl.addons.maple import MAPLEModel
from shiftrl.addons.mobile import MOBILE
from shiftrl.addons.morec import MORECMOBILE, MORECMOPO
from shiftrl.addons.rollouts import MOPO
from shiftrl.addons.spot import SPOT
from shiftrl.addons.srpo import SRPO
from shiftrl.addons.ssar import SSAR
from shiftrl.core.errors import ConfigError

ADDONS: dict[str, Callable[..., AddOn]] = {
    cls.name: cls
    for cls in (DARA, SRPO, SPOT, SSAR, MOPO, MOBILE, MORECMOPO, MORECMOBILE, MAPLEModel)
}


def build_addons(specs: Sequence[dict[str, Any]], learner: Any = None) -> tuple[AddOn, ...]:
    """Add-on objects from their config.json records ({"name": ..., **settings}), bound to
    `learner` (checked, learner-dependent settings resolved) when one is given."""
    out = []
    for spec in specs:
        settings = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
        name = settings.pop("name", None)
        if name not in ADDONS:
            raise ConfigError(
                f"unknown add-on '{name}'; available: {', '.join(sorted(ADDONS)) or 'none'}"
            )
        try:
            out.append(ADDONS[name](**settings))
        except TypeError as e:  # an unknown or mistyped setting
            raise ConfigError(f"add-on '{name}': {e}") from None
    if learner is not None:
        out = [ad.bind(learner) for ad in out]
    return tuple(out)


__all__ = [
    "ADDONS",
    "DARA",
    "MOBILE",
    "MOPO",
    "MAPLEModel",
    "MORECMOBILE",
    "MORECMOPO",
    "SPOT",
    "SRPO",
    "SSAR",
    "AddOn",
    "AddOnContext",
    "build_addons",
]
