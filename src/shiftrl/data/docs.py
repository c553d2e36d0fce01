"""Render docs/datasets.md from the dataset registry, the zoo manifest and the recorded builds.

    python -m shiftrl.data.docs > docs/datasets.md

Statistics come from `checksums.json` (written by `shiftrl data make ID --record`), so the
page never needs the datasets themselves; a recorded build counts only while the zoo
weights it was made from are the shipped ones. The collection speed comes from
`docs/benchmarks/collection-cpu.json` (`scripts/measure_collect.py`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
SPEED_FILE = ROOT / "docs" / "benchmarks" / "collection-cpu.json"
MUJOCO_ROBOTS = ("hopper", "walker2d", "halfcheetah", "ant")


def _fmt(x: Any, digits: int = 1) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _behaviour_return(spec) -> str:
    if spec.origin != "zoo":
        return "scripted"
    r = spec.info.get("behaviour_return")
    if isinstance(r, list):
        return " / ".join(_fmt(x) for x in r)
    if spec.info.get("level") == "medium-replay":
        return "snapshots up to medium"
    return _fmt(r)


def rows() -> list[dict[str, Any]]:
    from shiftrl.data import records, registry

    out = []
    for did in registry.dataset_ids():
        spec = registry.REGISTRY[did]
        rec = records.recorded_build(did, spec.default_size, 0)
        if rec is not None and rec.get("inputs_sha256") != spec.inputs():
            rec = None  # recorded from other zoo weights: not this dataset any more
        rec = rec or {}
        out.append(
            {
                "id": did,
                "aliases": sorted(a for a, t in registry.ALIASES.items() if t == did),
                "variant": spec.info.get("variant", did.split("/")[0]),
                "level": spec.info.get("level", ""),
                "behaviour_return": _behaviour_return(spec),
                "size": spec.default_size,
                "size_unit": spec.size_unit,
                "episodes": rec.get("episodes"),
                "returns": (
                    f"{_fmt(rec['return_mean'])} / {_fmt(rec['return_min'])} / "
                    f"{_fmt(rec['return_max'])}"
                    if rec
                    else "-"
                ),
                "normalized": rec.get("normalized_score"),
                "sha256": f"`{rec['sha256'][:16]}`" if rec else "not recorded yet",
                "command": f"`{registry.make_command(did)}`",
            }
        )
    return out


def speed_section() -> list[str]:
    if not SPEED_FILE.is_file():
        return ["Not measured yet (`scripts/measure_collect.py`)."]
    r = json.loads(SPEED_FILE.read_text())
    m = r["machine"]
    lines = [
        f"Measured {r['date']} with `scripts/measure_collect.py` ({r['what']}; policy: "
        f"{r['snapshot']}), on {m['cores']} cores ({m['cpu']}), Python {m['python']}.",
        "",
        "| policy evaluation | transitions/s (wall clock, median) | transitions per CPU-second |",
        "|---|---|---|",
    ]
    for name, stats in r["transitions_per_s"].items():
        cpu = r.get("transitions_per_cpu_s", {}).get(name, {}).get("median")
        lines.append(f"| {name} | {_fmt(stats['median'])} | {_fmt(cpu)} |")
    target = r.get("target_transitions_per_s", 3000)
    best = r["transitions_per_s"].get("numpy (datasets)", {}).get("median", 0)
    best_cpu = r.get("transitions_per_cpu_s", {}).get("numpy (datasets)", {}).get("median", 0)
    verdict = (
        "met on the wall clock"
        if best >= target
        else (
            "met per CPU-second (what one free core gives) but not on the wall clock of the "
            "busy machine"
            if best_cpu >= target
            else "not met"
        )
    )
    others = "; ".join(m.get("busiest_other_processes", [])) or "nothing recorded"
    lines += [
        "",
        f"Target: >= {target:,} transitions/s for hopper on 2 cores: **{verdict}**. "
        f"Load average {m['load_average_before'][0]} before, {m['load_average_after'][0]} "
        f"after; the busiest other processes at the start: {others}.",
    ]
    return lines


def zoo_section(manifest: dict[str, Any]) -> list[str]:
    """The behaviour-policy budget and the returns reached, per variant, from the manifest."""
    lines = [
        "## Behaviour policies: budget and returns reached",
        "",
        "Each variant's policies come from one online SAC run (`shiftrl zoo train`: 2x128 "
        "networks, 4 environments, one update per transition, 10k uniform-random warm-up "
        "steps) on the 2-core CPU machine; the budget is the run's environment steps. "
        "Returns are means over the episodes shown, sampling the policy as the datasets do. "
        "D4RL's experts (hopper 3,234, walker2d 4,592, halfcheetah 12,135) are context only: "
        "where a run stopped short of them, its expert is the best policy that budget reached.",
        "",
        "| variant | budget (SAC steps) | expert return (at step) | medium return (at step) "
        "| random return | replay snapshots |",
        "|---|---|---|---|---|---|",
    ]
    for variant, p in sorted(manifest["policies"].items()):
        snaps = {s["name"]: s for s in p["snapshots"]}

        def at(name: str, snaps: dict = snaps) -> str:
            s = snaps.get(name)
            if s is None:
                return "-"
            return (
                f"{_fmt(s['return_mean'])} ± {_fmt(s['return_std'])} "
                f"({_fmt(s['train_steps'])}, {s['episodes']} ep.)"
            )

        replay = sum(1 for n in snaps if n.startswith("replay-"))
        lines.append(
            f"| {variant} | {_fmt(p.get('train_steps_total'))} | {at('expert')} | "
            f"{at('medium')} | {_fmt(p.get('random_return'))} ({p.get('random_episodes', '-')} "
            f"ep.) | {replay} |"
        )
    return [*lines, ""]


def snapshot_section(manifest: dict[str, Any]) -> list[str]:
    """The return of every shipped snapshot (`shiftrl zoo measure` for the replay ones)."""
    lines = [
        "### Return of every shipped snapshot",
        "",
        "Mean return over each snapshot's episodes (10, sampling the policy), by SAC step; the "
        "replay snapshots regenerate medium-replay. Measured by `shiftrl zoo export` (expert, "
        "medium) and `shiftrl zoo measure` (the others); `manifest.json` has the std too.",
        "",
    ]
    for variant, p in sorted(manifest["policies"].items()):
        snaps = sorted(p["snapshots"], key=lambda s: (s["train_steps"], s["name"]))
        cells = [
            f"{s['name'] if not s['name'].startswith('replay-') else _fmt(s['train_steps'])}: "
            f"{_fmt(s.get('return_mean'), 0)}"
            for s in snaps
        ]
        lines.append(f"- **{variant}**: {', '.join(cells)}")
    return [*lines, ""]


def reference_section() -> list[str]:
    """Where each variant's reference returns come from, and D4RL's for comparison."""
    from shiftrl.envs import VARIANTS
    from shiftrl.envs.reference import D4RL_REFERENCE, random_returns, zoo_reference

    own = sum(zoo_reference(v.gym_id) is not None for v in VARIANTS.values())
    rows = [
        f"| {env} | {_fmt(lo, 1)} | {_fmt(hi, 1)} |" for env, (lo, hi) in D4RL_REFERENCE.items()
    ]
    return [
        "## Reference scores",
        "",
        "Normalized score = 100 x (return - random) / (expert - random), always with the "
        "references of the environment evaluated in (`shiftrl.envs.reference`):",
        "",
        f"- the {own} variants with zoo policies: random and expert returns measured in that "
        "variant (the table above);",
        f"- every other variant ({len(VARIANTS) - own} of {len(VARIANTS)}): its own "
        f"random return ({len(random_returns())} variants measured, 50 uniform-random episodes "
        "each, `python -m shiftrl.envs.measure`) and, having no expert of its own, the expert "
        "return of its robot's base dynamics, so 100 there means as good as the unshifted "
        "expert (ant, which has no zoo policies: D4RL's expert). `shiftrl envs` shows each "
        "variant's pair and where it comes from;",
        "- the plain Gymnasium ids (`Hopper-v5`, ...): D4RL's published references, to "
        "compare with papers:",
        "",
        "| env | D4RL random | D4RL expert |",
        "|---|---|---|",
        *rows,
        "",
    ]


def neorl_section() -> list[str]:
    """NeoRL-like levels: what matches NeoRL, what differs, and the snapshots chosen."""
    from shiftrl.data import neorl
    from shiftrl.envs.reference import NEORL_REFERENCE

    lines = [
        "## NeoRL-like data",
        "",
        "NeoRL (Qin et al., 2022) is the benchmark where MOREC reports its largest gains. Its "
        "data cannot be downloaded here, so the project makes NeoRL-style data from the zoo "
        "(`shiftrl.data.neorl`): `<variant>/neorl-low-v0`, `neorl-medium-v0`, "
        "`neorl-high-v0` for every hopper, walker2d and halfcheetah variant of the zoo "
        "(`hopper/neorl-medium-v0` = `hopper-base/neorl-medium-v0`).",
        "",
        "What matches NeoRL:",
        "",
        "- behaviour policies: SAC checkpoints whose deterministic return is closest to 25% "
        "(low), 50% (medium), 75% (high) of the best checkpoint's;",
        "- acting: the Gaussian mean with probability 0.8, else a sample of the policy "
        "(NeoRL's `-noise` files);",
        "- observation: the x-position at index 0 (`exclude_current_positions_from_observation"
        "=False`; 12 dims for hopper, 18 for walker2d and halfcheetah); the data's env is "
        "`shiftrl/<variant>-neorl-v0`, where a policy trained on it is evaluated;",
        "- reward: NeoRL's reward functions exactly, (x' - x)/0.008 + 1 - 1e-3 ||a||^2 "
        "(hopper, walker2d), (x' - x)/0.05 - 0.1 ||a||^2 (halfcheetah). Gymnasium v5's reward "
        "is the same except that hopper and walker2d drop the healthy bonus on the step that "
        "terminates (v5 gives `is_healthy` x 1, NeoRL's v3 always 1), so the `-neorl` envs "
        "add it back: checked to 1e-15 per step, the v5 return being lower by exactly the "
        "number of terminations (`shiftrl.envs.neorl`);",
        "- size in trajectories (`--size`, NeoRL's `train_num`; default 1,000, the size "
        "model-based papers use), whole episodes of at most 1,000 steps; trajectory k comes "
        "from seeds of (ID, seed, k) alone, so `--size 100` is exactly the first 100 "
        "trajectories of the 1,000 (NeoRL's first-N semantics);",
        "- termination: `termination_fn('hopper-neorl')` (chosen from the env id by MOPO, "
        "MOBILE, ...) is the hopper's function on the observation without x.",
        "",
        "What differs:",
        "",
        "- Gymnasium v5 MuJoCo models (NeoRL: Gym v3; walker2d v5 has both feet at friction "
        "0.9, v3's left foot 1.9), and the zoo's SAC runs (2x128 actors) rather than "
        "NeoRL's;",
        "- the checkpoints: the zoo ships the expert and every 10k-step snapshot up to the "
        "medium one (for medium-replay), nothing between medium and expert, so a level can "
        "be far from its fraction and two levels can share a snapshot (the table below "
        "gives the fraction reached; `shiftrl data info` too);",
        "- no validation file (NeoRL ships 10% extra trajectories): make one with another "
        "`--seed`;",
        "- normalized scores use the zoo's references of the variant (as every other "
        "dataset), measured with v5's reward (at most 1 lower per episode). NeoRL's "
        "(min, max), as MOREC's trainer uses them, for comparison with papers: "
        + ", ".join(f"{r} ({lo:g}, {hi:g})" for r, (lo, hi) in NEORL_REFERENCE.items())
        + ";",
        "- the shifted-dynamics variants, which NeoRL does not have.",
        "",
        "`scripts/measure_neorl_levels.py` measures every snapshot's deterministic return "
        "(Gaussian mean, NeoRL env and reward, "
        f"{neorl.choices().get('episodes', neorl.MEASURE_EPISODES)} episodes) and writes the "
        "choice into `src/shiftrl/data/neorl_behaviour.json` (with each snapshot file's "
        "sha256: a build from re-exported weights stops and asks to measure again):",
        "",
        "| variant | best (return) | low: snapshot (return, % of best) | medium | high |",
        "|---|---|---|---|---|",
    ]
    for variant, c in sorted(neorl.choices().get("variants", {}).items()):
        cells = [
            f"{lv['snapshot']} ({_fmt(lv['return_mean'], 0)}, {100 * lv['fraction_of_best']:.0f}%)"
            for lv in (c["levels"][level] for level in neorl.LEVEL_FRACTIONS)
        ]
        best = f"{c['best']['snapshot']} ({_fmt(c['best']['return_mean'], 0)})"
        lines.append(f"| {variant} | {best} | {' | '.join(cells)} |")
    chosen = [
        (lv["fraction_of_best"], neorl.LEVEL_FRACTIONS[level])
        for c in neorl.choices().get("variants", {}).values()
        for level, lv in c["levels"].items()
    ]
    close = sum(abs(got - want) <= neorl.OFF_TARGET for got, want in chosen)
    lines += [
        "",
        f"{close} of {len(chosen)} levels are within 10 points of their target fraction; "
        "the others need snapshots the zoo does not ship yet (between its medium and "
        "expert), after which the script chooses again.",
    ]
    return [*lines, ""]


def render() -> str:
    from shiftrl import zoo
    from shiftrl.data import neorl, zoo_datasets

    variants = sorted(zoo.manifest()["policies"])
    mujoco = [v for v in variants if v.split("-")[0] in MUJOCO_ROBOTS]
    lines = [
        "# Datasets",
        "",
        "Generated by `python -m shiftrl.data.docs > docs/datasets.md` from the dataset "
        "registry, the behaviour-policy zoo's manifest and the recorded builds "
        "(`src/shiftrl/data/checksums.json`); do not edit by hand.",
        "",
        "No dataset is downloaded: every built-in dataset is collected on your machine from "
        "the policies shipped in the package, deterministically, the first time it is used.",
        "",
        "```bash",
        "shiftrl data list                                # what exists and what can be made",
        "shiftrl data make hopper-mass-2.0/medium-v0      # [--size N] [--seed S] [--force]",
        "shiftrl data info hopper/medium-v0               # provenance, returns, scores, sha256",
        "shiftrl train --algo iql --dataset hopper/medium-v0 --source hopper-mass-2.0/medium-v0",
        "```",
        "",
        "`shiftrl.load_dataset(ID)` and `shiftrl train --dataset ID` make a dataset on first use "
        "(saying so first, with its size and the time it took on the project's machine, then "
        "with a progress bar) and load it from the cache afterwards. An ID may name its size "
        "and seed, as its cache entry is named: `hopper/medium-n100000-s1-v0` is "
        "`hopper/medium-v0` with `--size 100000 --seed 1` (`-s<seed>` may be left out for "
        "seed 0); this form works wherever an ID does (`train --dataset/--source`, `bench`, "
        "`finetune` and `train --resume` through the run's config, the Python API), and "
        "`shiftrl data make` prints it for the build it made.",
        "",
        "## IDs and levels",
        "",
        "An ID is `<variant>/<level>-v0`, the variant being one of `shiftrl envs` that the zoo "
        "has behaviour policies for; an unshifted variant also answers to its robot's name "
        "(`hopper/medium-v0` = `hopper-base/medium-v0`). The levels follow D4RL:",
        "",
        "| level | behaviour | default size |",
        "|---|---|---|",
        "| `random` | uniform random actions | 1,000,000 |",
        "| `medium` | the zoo's `medium` SAC snapshot (about a third of the way from random "
        "to expert), sampled from its tanh-Gaussian | 1,000,000 |",
        "| `expert` | the zoo's `expert` SAC snapshot, sampled | 1,000,000 |",
        "| `medium-expert` | `medium-v0` then `expert-v0`, stacked as in D4RL: size N = the "
        "first ceil(N/2) transitions of medium plus floor(N/2) of expert (same seed) | "
        "2,000,000 |",
        "| `medium-replay` | the SAC replay buffer up to the medium snapshot, regenerated "
        "(below) | the medium snapshot's training steps |",
        "| `neorl-low`, `neorl-medium`, `neorl-high` | NeoRL-style (hopper, walker2d, "
        "halfcheetah): the snapshot near 25/50/75% of the best return, its mean 80% of the "
        "time, NeoRL's observation and reward ([NeoRL-like data](#neorl-like-data)) | 1,000 "
        "trajectories |",
        "",
        "`--size N` sets the number of transitions (episodes are whole except the last one, "
        "cut at N and marked as a timeout). Data is collected in 1-16 environments side by "
        "side (one per 1,000 transitions), episodes stored one after another in the order "
        "they end; `terminals` are true terminations, `timeouts` time-limit cuts.",
        "",
        "**medium-replay** is regenerated, not the original buffer. The SAC run that trained "
        "the policy took `start_steps` uniform-random transitions, then acted with a policy it "
        "updated every 1,000 transitions; the zoo ships that policy every `snapshot_every` "
        "transitions (`replay-<steps>` snapshots). The dataset re-collects each window "
        "[t_k, t_k+1) of the buffer with the snapshot taken at its start (the first "
        "`start_steps` with uniform random actions), each window contributing the share it "
        "had in the buffer. Same policies in the same proportions; but fresh environment "
        "randomness, a policy frozen within each window, and an episode cut (timeout) at the "
        "end of each window where the run's episodes carried on.",
        "",
        "Toy datasets (`pointreach/mixed-v0`, `pendulum/*-v0`) use scripted controllers and "
        "need no zoo; they take precedence over a zoo alias of the same name "
        "(`pendulum/medium-v0` is the toy; the zoo's is `pendulum-base/medium-v0`).",
        "",
        "## Storage",
        "",
        "Datasets are Minari datasets under `$SHIFTRL_DATA` (default `~/.shiftrl/data`), which "
        "is a Minari root: `MINARI_DATASETS_PATH=$SHIFTRL_DATA` lets `minari.load_dataset` "
        "read them. Minari ids allow no dots, so `<variant>/<level>-vN` is stored as "
        "`shiftrl/<variant with . as _>/<level>-vN` (`hopper-mass-2.0/medium-v0` -> "
        "`shiftrl/hopper-mass-2_0/medium-v0`); a build with a non-default size or a seed "
        "other than 0 adds `-n<size>-s<seed>` (`shiftrl/hopper-mass-2_0/medium-n5000-s1-v0`). "
        "Each dataset folder also holds `shiftrl-flat.npz`, the same arrays flat, checked "
        "against the recorded sha256 on load: Minari keeps one HDF5 group per episode, which "
        "is slow to read for many episodes (1M pendulum transitions, 5,000 episodes: 19 s "
        "from Minari, 0.5 s from the flat copy, measured on the busy 2-core machine; 1M "
        "random-action hopper transitions are about 50,000 episodes).",
        "",
        "## Reproducibility",
        "",
        "What is promised: **the same bytes on the platform and library versions a build was "
        "recorded on, the same statistics everywhere else.** Each part of a dataset is "
        "collected with a seed derived from (ID, seed, part), which seeds the environments' "
        "resets and the NumPy generator that draws the policy's noise; the policy is the "
        "snapshot's actor evaluated in NumPy (float32), one batched call per step. Its matrix "
        "products go to OpenBLAS, which picks a kernel for the CPU (and honours "
        "`OPENBLAS_CORETYPE`); kernels round differently, one differing bit makes the "
        "rollouts diverge, and the rest of the build is a fresh sample of the same "
        "distribution. Measured: on the project's current machines (AMD EPYC with AVX-512, "
        "`OPENBLAS_CORETYPE=Haswell` set by the machine image) 9 of 11 small recorded builds "
        "made again differ in bytes, and with `OPENBLAS_CORETYPE` unset (the kernel detected "
        "is `SkylakeX`) all 4 tried reproduce byte for byte, with MuJoCo 4.0.0 and 4.0.1 alike.",
        "",
        "`src/shiftrl/data/checksums.json` records, for each build made by the project, its "
        "sha256 (`ds.checksum()`, over the arrays), its statistics, the library versions and "
        "the platform (CPU vendor and model, the instruction-set features that change code "
        "generation, the BLAS kernel) it was made on; an (ID, size, seed) may have one record "
        "per platform, the first being the reference. Every build of a recorded (ID, size, "
        "seed) from the same zoo weights is checked (`shiftrl.data.verify`):",
        "",
        "- its sha256 is a recorded one: identical, nothing to say;",
        "- a record was made on this platform with these versions and the sha256 differs: an "
        "error (the build changed; `--no-verify` keeps it);",
        "- otherwise it is compared with the reference record statistically: transitions "
        "exactly (NeoRL-style builds, sized in trajectories: episodes exactly, transitions "
        "within 5 standard errors, sqrt(2 x episodes) x std(length)); episode count and mean "
        "episode return (and the normalized score) within 5 "
        "standard errors of the difference (mean: sqrt(2) x std / sqrt(episodes); episode "
        "count, a renewal count over N transitions: sqrt(2 N var(length) / mean(length)^3)); "
        "at most 20 episodes beyond the recorded minimum or maximum return (a "
        "distribution-free rank count: the chance of k is about 2^-k). Agreement keeps the "
        "build, cached with its own sha256, with one warning line naming what differs "
        "(versions, CPU features, BLAS kernel, or a record from before platforms were "
        "recorded); disagreement is an error naming the figures.",
        "",
        "The tolerances come from measured spread (`scripts/measure_dataset_spread.py`, 52 "
        "builds of 15 datasets, project CPU machine): a diverged build is statistically a "
        "build with another seed, so seed-to-seed differences bound cross-platform ones. "
        "Between seeds (87 pairs of the same dataset and size), the mean return moved by at "
        "most 2.35 standard errors (rms 0.76) and the episode count by at most 1.62 (rms "
        "0.42); sample extremes moved by up to 4.1 episode-return standard deviations (45% of "
        "the return range, right-skewed returns such as walker2d medium), hence the rank "
        "count for them. Between the records and the same builds made on this machine's "
        "kernel (11 recorded builds), every figure moved by at most 0.20 standard errors "
        "(mean) and 0.16 (episodes). All 74 recorded default builds were made again here with "
        "the locked versions (`shiftrl data record --all`, see below): the 18 that use no "
        "matrix product (uniform-random and scripted toy data) are byte-identical; the 56 "
        "others differ in bytes and all pass, the mean return within 1.72 standard errors "
        "of the record (rms 0.53) and the episode count within 1.70 (rms 0.37). Their "
        "records for this platform are in checksums.json beside the originals, so builds on "
        "the project's machines are checked byte for byte.",
        "",
        "A cached build is checked on every load: its bytes must match the sha256 it was "
        "cached with, or loading stops with an error that says to make it again "
        "(`shiftrl data make ID --force`). `shiftrl data info ID` says what is reproducible "
        "on this machine (`reproducible: bytes ...` or `statistics only ...`, with the "
        "recorded platforms), and for a made build how it compared with its record "
        "(`verification`). Re-exported zoo weights make new data: the record then no longer "
        "applies and a cached copy made from the old weights is made again.",
        "",
        "The versions are locked: `bash scripts/test.sh` and `bash scripts/demo.sh` install "
        "`requirements-dev.lock` / `requirements.lock` (every transitive version, with "
        "hashes; the pins in `requirements/pins.txt` are the versions the records were made "
        "with). A dependency upgrade is a deliberate commit: `bash scripts/relock.sh "
        "[--upgrade]` rewrites the locks, reinstalls, re-makes and re-records every recorded "
        "build for this platform (`shiftrl data record --all`: resumable, skips what is "
        "already recorded here) and runs the tests.",
        "",
        "## Target and source data for dynamics shift",
        "",
        "`shiftrl.data.compose.compose(target_id, source_ids, target_fraction=0.1, seed=0)` "
        "returns `(target_subset, sources)`: the target keeps whole episodes, chosen in a "
        "seeded order until the fraction of its transitions (DARA's 1T = 10%) or "
        "`target_count` transitions (ODRL's 5,000) are reached; `subset_episodes(ds, fraction="
        "..., count=<episodes>, transitions=..., seed=...)` does the subsetting. "
        "`shiftrl train --target-fraction 0.1` / `--target-count 5000` apply it to `--dataset`.",
        "",
        "## Collection speed",
        "",
        *speed_section(),
        "",
        *zoo_section(zoo.manifest()),
        *snapshot_section(zoo.manifest()),
        *reference_section(),
        *neorl_section(),
        "## Every dataset",
        "",
        "Default size, seed 0. Behaviour return: the zoo's measurement of the behaviour policy "
        "(mean episode return of the snapshot, or of uniform random actions). Episode returns "
        "and the normalized score (100 x (mean return - random) / (expert - random), the "
        "variant's own references, `shiftrl.envs.reference`) are those of the recorded build.",
        "",
        "| variant | level | behaviour return | size | episodes | episode return mean / min / "
        "max | normalized | sha256 (first 16) | command |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows():
        level = r["level"] + "".join(f" (= `{a}`)" for a in r["aliases"])
        size = _fmt(r["size"]) + (" traj." if r["size_unit"] == "trajectories" else "")
        lines.append(
            f"| {r['variant']} | {level} | {r['behaviour_return']} | {size} | "
            f"{_fmt(r['episodes'])} | {r['returns']} | {_fmt(r['normalized'])} | "
            f"{r['sha256']} | {r['command']} |"
        )
    lines.append("")
    if not mujoco:
        lines += [
            "The MuJoCo rows (hopper, walker2d, halfcheetah and ant variants) appear once the "
            "zoo holds their behaviour policies; they are being trained. After `shiftrl zoo "
            "export RUN`, `shiftrl data make ID --record` for each default build and "
            "`python -m shiftrl.data.docs > docs/datasets.md` fill this table.",
            "",
        ]
    zoo_note = ", ".join(variants) or "none"
    lines += [
        f"Zoo variants with behaviour policies: {zoo_note}. Levels per variant: "
        f"{', '.join(zoo_datasets.LEVELS)}; and {', '.join(neorl.LEVEL_FRACTIONS)} for "
        f"hopper, walker2d and halfcheetah. Cache: `$SHIFTRL_DATA`; recorded builds: "
        f"{_count_builds()}.",
        "",
    ]
    return "\n".join(lines)


def _count_builds() -> str:
    from shiftrl.data import records

    recs = [r for v in records.recorded_builds().values() for r in v]
    builds = {
        (did, r["size"], r["seed"]) for did, v in records.recorded_builds().items() for r in v
    }
    platforms = {json.dumps(r.get("platform"), sort_keys=True) for r in recs}
    return f"{len(builds)} ({len(recs)} records from {len(platforms)} platform(s))"


if __name__ == "__main__":
    print(render(), end="")
