"""Reference returns for normalized scores: 100 * (R - random) / (expert - random).

A variant's score uses the variant's own references: for every variant in the
behaviour-policy zoo, (the manifest's `random_return`, measured with uniform random
actions in that variant, and the `expert` snapshot's `return_mean`). D4RL's published
values are kept for the plain Gymnasium ids (`Hopper-v5`) so users can compare with
papers, and are the fallback for a base variant (`shiftrl/hopper-base-v0`) the zoo has
not measured. A dataset whose metadata carries its own reference scores always wins for
its own env. A NeoRL-observation variant (`hopper-base-neorl`) uses the references of its
dynamics (`hopper-base`): the zoo measured them with Gymnasium v5's reward, which differs
from NeoRL's by the healthy bonus of the one terminating step (at most 1 per episode).
NeoRL's own (min, max) returns are kept in `NEORL_REFERENCE` to compare with papers.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

# D4RL `d4rl/infos.py` (v0 values reused by v1/v2); keyed by the Gymnasium v5 ids we run.
D4RL_REFERENCE: dict[str, tuple[float, float]] = {
    "Hopper-v5": (-20.272305, 3234.3),
    "HalfCheetah-v5": (-280.178953, 12135.0),
    "Walker2d-v5": (1.629008, 4592.3),
    "Ant-v5": (-325.6, 3879.7),
}

# NeoRL's normalisation (min, max) returns, as MOREC's trainer uses them (Gym v3 envs,
# NeoRL's SAC); keyed by robot. Shown beside the zoo's references, never used for scores.
NEORL_REFERENCE: dict[str, tuple[float, float]] = {
    "halfcheetah": (-298.0, 12284.0),
    "hopper": (5.0, 3294.0),
    "walker2d": (1.0, 5143.0),
}

# Measured by the project (random policy / best policy), see docs/datasets.md.
MEASURED_REFERENCE: dict[str, tuple[float, float]] = {}
RANDOM_RETURNS = Path(__file__).with_name("random_returns.json")


@cache
def random_returns() -> dict[str, dict]:
    """{variant: {random_return, random_std, episodes}} measured in every variant."""
    return json.loads(RANDOM_RETURNS.read_text()) if RANDOM_RETURNS.exists() else {}


def reference_scores(env_id: str) -> tuple[float, float] | None:
    """(random return, expert return) for `env_id` (a Gymnasium id or variant name), or None.

    Order: MEASURED_REFERENCE, the zoo's measurements of the variant, the toy and D4RL
    tables, and for an unshifted variant its base env's entry in those tables.
    """
    from shiftrl.envs.registry import variant_of
    from shiftrl.envs.toy import TOY_REFERENCE

    if env_id in MEASURED_REFERENCE:
        return MEASURED_REFERENCE[env_id]
    zoo = zoo_reference(env_id)
    if zoo is not None:
        return zoo
    variant = variant_of(env_id)
    base = variant.base_env_id if variant is not None and not variant.shifts else None
    for key in (env_id, base):
        for table in (TOY_REFERENCE, D4RL_REFERENCE):
            if key in table:
                return table[key]
    return _borrowed_expert(variant)


def _borrowed_expert(variant) -> tuple[float, float] | None:
    """(the variant's own random return, its robot's base-dynamics expert return)."""
    if variant is None or variant.physics not in random_returns():
        return None
    base = reference_scores(f"{variant.robot}-base")
    if base is None:
        return None
    return float(random_returns()[variant.physics]["random_return"]), base[1]


def reference_source(env_id: str) -> str:
    """Where `reference_scores(env_id)` comes from, in words (for `shiftrl envs`, reports)."""
    from shiftrl.envs.registry import variant_of
    from shiftrl.envs.toy import TOY_REFERENCE

    if env_id in MEASURED_REFERENCE:
        return "measured"
    if zoo_reference(env_id) is not None:
        return "zoo: random and expert measured in this variant"
    variant = variant_of(env_id)
    base = variant.base_env_id if variant is not None and not variant.shifts else None
    if env_id in TOY_REFERENCE or base in TOY_REFERENCE:
        return "toy task's own"
    if env_id in D4RL_REFERENCE or base in D4RL_REFERENCE:
        return "D4RL's published"
    if _borrowed_expert(variant) is not None:
        return f"random measured in this variant; expert of {variant.robot}-base (no policy here)"
    return "none"


def zoo_reference(env_id: str) -> tuple[float, float] | None:
    """(random_return, expert return_mean) from the zoo manifest for a variant, else None."""
    from shiftrl.envs.registry import variant_of

    variant = variant_of(env_id)
    if variant is None:
        return None
    from shiftrl.zoo import manifest

    entry = manifest()["policies"].get(variant.physics)
    if not entry or entry.get("random_return") is None:
        return None
    expert = next((s for s in entry["snapshots"] if s["name"] == "expert"), None)
    if expert is None or expert.get("return_mean") is None:
        return None
    return float(entry["random_return"]), float(expert["return_mean"])


def normalized_score(ret: float, ref: tuple[float, float] | None) -> float:
    if ref is None:
        return float("nan")
    low, high = ref
    return 100.0 * (ret - low) / (high - low)
