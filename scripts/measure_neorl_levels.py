"""Measure every zoo snapshot's deterministic return in its NeoRL env and choose the
behaviour policies of the `neorl-low/medium/high` datasets; writes
src/shiftrl/data/neorl_behaviour.json (shipped).

    PYTHONPATH=src python scripts/measure_neorl_levels.py [VARIANT ...] [--episodes 10]

Without variants: every zoo variant that has a NeoRL env (hopper, walker2d, halfcheetah).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

from shiftrl import zoo
from shiftrl.data import neorl
from shiftrl.envs.registry import NEORL_SUFFIX, variant_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*")
    parser.add_argument("--episodes", type=int, default=neorl.MEASURE_EPISODES)
    args = parser.parse_args()
    everyone = [v for v in sorted(zoo.manifest()["policies"]) if variant_of(v + NEORL_SUFFIX)]
    out = neorl.choices() or {"variants": {}}
    out.update(
        format=1,
        episodes=args.episodes,
        seed=neorl.MEASURE_SEED,
        level_fractions=neorl.LEVEL_FRACTIONS,
        protocol="deterministic return (Gaussian mean) in the variant's NeoRL env, NeoRL's "
        "reward; env k reset with seed + k; the chosen snapshot is the one closest to "
        "fraction x the best snapshot's return",
    )
    for variant in args.variants or everyone:
        start = time.monotonic()
        out["variants"][variant] = neorl.measure_variant(variant, args.episodes)
        lv = out["variants"][variant]["levels"]
        took = time.monotonic() - start
        print(
            f"{variant}: best {out['variants'][variant]['best']}, "
            + ", ".join(f"{k} {v['snapshot']} {v['return_mean']:.0f}" for k, v in lv.items())
            + f" ({took:.0f} s on {platform.machine()})",
            flush=True,
        )
        out["variants"] = dict(sorted(out["variants"].items()))
        neorl.CHOICES_FILE.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
