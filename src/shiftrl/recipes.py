"""Named methods that are a learner plus add-ons: `--algo spot` is TD3+BC's `spot` preset
with the `spot` add-on, whose settings follow the dataset (the papers' per-task values)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def _spot_settings(dataset: str) -> dict[str, Any]:
    from shiftrl.addons.spot import preset_lambda

    return {"lam": preset_lambda(dataset)}


def _per_dataset(module: str, function: str, *args: str) -> Callable[[str], dict[str, Any]]:
    """`module.function(*args, dataset)`, imported when first called: the add-on modules
    import the learners, which must not import this registry back."""

    def settings(dataset: str) -> dict[str, Any]:
        return getattr(importlib.import_module(module), function)(*args, dataset)

    return settings


_mopo_settings = _per_dataset("shiftrl.addons.rollouts", "preset_settings")
_mobile_settings = _per_dataset("shiftrl.addons.mobile", "preset_settings")
_mobile_learner_settings = _per_dataset("shiftrl.addons.mobile", "learner_settings")


def _morec_settings(algo: str) -> Callable[[str], dict[str, Any]]:
    return _per_dataset("shiftrl.addons.morec", "preset_settings", algo)


def _morec_learner_settings(algo: str) -> Callable[[str], dict[str, Any]]:
    return _per_dataset("shiftrl.addons.morec", "learner_settings", algo)


def _ssar_settings(learner: str) -> Callable[[str], dict[str, Any]]:
    return _per_dataset("shiftrl.addons.ssar", "preset_settings", learner)


@dataclass(frozen=True)
class Recipe:
    name: str
    learner: str
    preset: str
    addon: str
    description: str
    paper: str
    settings: Callable[[str], dict[str, Any]] = field(default=lambda dataset: {})
    """The add-on's per-dataset settings (the papers' per-task values)."""
    learner_settings: Callable[[str], dict[str, Any]] = field(default=lambda dataset: {})
    """Per-dataset changes to the learner preset (e.g. a fixed SAC temperature where the
    released configs turn automatic tuning off)."""

    def addon_record(self, dataset: str) -> dict[str, Any]:
        from shiftrl.addons import ADDONS

        record = ADDONS[self.addon]().to_json()
        record.update(self.settings(dataset or ""))
        return record


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            "spot",
            "td3bc",
            "spot",
            "spot",
            "TD3 with Q normalization + SPOT's density support constraint (lambda per dataset)",
            "Wu et al., NeurIPS 2022",
            _spot_settings,
        ),
        Recipe(
            "ssar-td3bc",
            "td3bc",
            "ssar",
            "ssar",
            "TD3+BC (LayerNorm critics) with SSAR's state-wise beta(s) (settings per dataset)",
            "Luo et al., ICML 2025",
            _ssar_settings("td3bc"),
        ),
        Recipe(
            "ssar-cql",
            "cql",
            "ssar",
            "ssar",
            "CQL (LayerNorm critics) with SSAR's state-wise beta(s) (settings per dataset)",
            "Luo et al., ICML 2025",
            _ssar_settings("cql"),
        ),
        Recipe(
            "mopo",
            "sac",
            "mopo",
            "mopo",
            "SAC on real + model rollouts penalized by the ensemble's uncertainty (h, lambda "
            "per dataset)",
            "Yu et al., NeurIPS 2020",
            _mopo_settings,
        ),
        Recipe(
            "maple",
            "maple",
            "default",
            "maple-model",
            "SAC with GRU context encoders on real + model segments, one elite per rollout "
            "(H 10, lambda 0.25, penalty clip 40)",
            "Chen, Yu, Li, Luo, Qin, Shang & Ye, NeurIPS 2021",
        ),
        Recipe(
            "mobile",
            "sac",
            "mobile",
            "mobile",
            "SAC on real + model rollouts, model rewards lowered by the std over elites of "
            "Q'(s', a') (h, beta per dataset)",
            "Sun, Zhang, Jia, Zhang, Yu & Yu, ICML 2023",
            _mobile_settings,
            _mobile_learner_settings,
        ),
        Recipe(
            "morec-mopo",
            "sac",
            "mopo",
            "morec-mopo",
            "MOPO with MOREC's transition filter: model candidates chosen by a learned dynamics "
            "reward, rollouts of 100 ended below r_D 0.6 (lambda, rule per dataset)",
            "Luo, Xu, Cao & Yu, ICLR 2024",
            _morec_settings("morec-mopo"),
            _morec_learner_settings("morec-mopo"),
        ),
        Recipe(
            "morec-mobile",
            "sac",
            "morec-mobile",
            "morec-mobile",
            "MOBILE with MOREC's transition filter (softmax over candidates by a learned "
            "dynamics reward; beta per dataset)",
            "Luo, Xu, Cao & Yu, ICLR 2024",
            _morec_settings("morec-mobile"),
            _morec_learner_settings("morec-mobile"),
        ),
    )
}


def get_recipe(name: str) -> Recipe | None:
    return RECIPES.get(name.lower().replace("_", "-").replace("+", ""))
