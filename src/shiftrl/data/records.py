"""The recorded builds of the built-in datasets (`checksums.json`, shipped with the package).

A record holds what one build made by the project looked like: its sha256, statistics
(`shiftrl.data.verify.build_statistics`), the fingerprint of its inputs (zoo weights), the
library versions (`made_with`) and the platform (`platform`) it was made on. An (ID, size,
seed) may have several records, one per platform: the first is the reference the
statistical check compares with (the build the published figures were measured on); the
others let a platform of their own verify its builds byte for byte. Records written before
platforms were recorded have no `platform` and count as made on an unknown one.

`check_build` decides what a fresh build means against its records (`shiftrl.data.verify`
explains why bytes are only promised on the recorded platform and versions).
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from shiftrl.core.errors import DataError
from shiftrl.data.dataset import TransitionDataset
from shiftrl.data.verify import (
    build_statistics,
    compare,
    describe_platform,
    differences,
    platform_fingerprint,
)

CHECKSUMS_FILE = Path(__file__).with_name("checksums.json")
VERSIONED_PACKAGES = ("shiftrl", "numpy", "jax", "gymnasium", "mujoco")
"""The packages whose versions a record keeps (the ones that change a build's bytes)."""


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in VERSIONED_PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def fmt_versions(v: dict[str, str]) -> str:
    return ", ".join(f"{k} {x}" for k, x in v.items()) or "unknown versions"


# ---- reading and writing ----------------------------------------------------------------------
def recorded_builds() -> dict[str, list[dict[str, Any]]]:
    if not CHECKSUMS_FILE.is_file():
        return {}
    return json.loads(CHECKSUMS_FILE.read_text()).get("datasets", {})


def records_for(dataset_id: str, size: int, seed: int) -> list[dict[str, Any]]:
    """Every record of (ID, size, seed), the reference record first."""
    return [
        r for r in recorded_builds().get(dataset_id, []) if (r["size"], r["seed"]) == (size, seed)
    ]


def recorded_build(dataset_id: str, size: int, seed: int) -> dict[str, Any] | None:
    """The reference record of (ID, size, seed), if any."""
    recs = records_for(dataset_id, size, seed)
    return recs[0] if recs else None


def record_build(ds: TransitionDataset) -> dict[str, Any]:
    """Record a build made by `registry.make_dataset` in `checksums.json`: it replaces the
    record made on the same platform (any versions) or from other inputs; records of other
    platforms stay, the reference first."""
    prov = ds.metadata.provenance
    stats = build_statistics(ds)
    rec = {
        "size": prov["size"],
        "seed": prov["seed"],
        "sha256": ds.checksum(),
        **{k: stats[k] for k in ("transitions", "episodes", "return_mean")},
        **{k: stats[k] for k in ("return_min", "return_max", "normalized_score")},
        "inputs_sha256": prov.get("inputs_sha256"),
        "made_with": prov.get("made_with", versions()),
        "platform": prov.get("made_on", platform_fingerprint()),
        # spread, so that a build on another platform can be checked against this one
        **{k: stats[k] for k in ("return_std", "length_mean", "length_std")},
    }
    data = (
        json.loads(CHECKSUMS_FILE.read_text())
        if CHECKSUMS_FILE.is_file()
        else {"format": 1, "datasets": {}}
    )

    def replaced(r: dict[str, Any]) -> bool:
        return (r["size"], r["seed"]) == (rec["size"], rec["seed"]) and (
            r.get("platform") == rec["platform"] or r.get("inputs_sha256") != rec["inputs_sha256"]
        )

    kept = [r for r in data["datasets"].get(prov["dataset_id"], []) if not replaced(r)]
    # a stable sort keeps the reference record first within its (size, seed)
    data["datasets"][prov["dataset_id"]] = sorted(
        [*kept, rec], key=lambda r: (r["size"], r["seed"])
    )
    data["datasets"] = dict(sorted(data["datasets"].items()))
    CHECKSUMS_FILE.write_text(json.dumps(data, indent=1) + "\n")
    return rec


def is_recorded_here(dataset_id: str, size: int, seed: int, inputs: str) -> bool:
    """Whether (ID, size, seed) has a record from these inputs, versions and platform."""
    here_versions, here_platform = versions(), platform_fingerprint()
    return any(
        r.get("inputs_sha256") == inputs and not differences(r, here_versions, here_platform)
        for r in records_for(dataset_id, size, seed)
    )


# ---- checking a build against its records -----------------------------------------------------
def check_build(
    ds: TransitionDataset, cid: str, size: int, seed: int, inputs: str, *, verify: bool = True
) -> dict[str, Any]:
    """What the build `ds` of (cid, size, seed) is, against the records from the same inputs:

    - its sha256 is one of theirs: identical;
    - a record was made with these versions on this platform: its sha256 must match
      (DataError otherwise: the build is broken, not foreign);
    - otherwise its statistics must agree with the reference record (DataError naming the
      figures otherwise); it is kept with its own sha256 and a one-line warning.

    Returns the outcome stored in the build's provenance (`verification`)."""
    all_recs = records_for(cid, size, seed)
    recs = [r for r in all_recs if r.get("inputs_sha256") == inputs]
    if not all_recs:
        return {"result": "no recorded build"}
    if not recs:
        return {"result": "recorded from other zoo weights: not comparable"}
    if not verify:
        return {"result": "not verified (--no-verify)"}
    sha = ds.checksum()
    label = f"{cid} (size {size}, seed {seed})"
    if any(r["sha256"] == sha for r in recs):
        return {"result": "identical to a recorded build", "recorded_sha256": sha}
    here_versions, here_platform = versions(), platform_fingerprint()
    if any(not differences(r, here_versions, here_platform) for r in recs):
        raise DataError(
            f"{label} does not reproduce the recorded build on the platform and versions it was "
            f"recorded with: sha256 {sha[:16]}... != recorded "
            f"{[r['sha256'][:16] for r in recs]} ({fmt_versions(here_versions)}; "
            f"{describe_platform(here_platform)}); something in the build changed; "
            "`shiftrl data make --no-verify` keeps it anyway"
        )
    reference = recs[0]
    differs = differences(reference, here_versions, here_platform)
    unit = ds.metadata.provenance.get("size_unit", "transitions")
    checks = compare(reference, build_statistics(ds), ds.episode_returns(), unit)
    failed = [c for c in checks if not c.ok]
    if failed:
        raise DataError(
            f"{label} does not match the recorded build statistically: "
            f"{'; '.join(str(c) for c in failed)} (differs from the record: "
            f"{', '.join(differs)}); `shiftrl data make --no-verify` keeps it anyway"
        )
    shown = ", ".join(
        f"{c.figure} {c.here:g} vs {c.recorded:g}"
        for c in checks
        if c.figure in ("episodes", "return mean")
    )
    print(
        f"shiftrl: warning: {label} was made with other versions or on another platform than "
        f"its record ({', '.join(differs)}), so its bytes differ (sha256 {sha[:12]}... vs "
        f"recorded {reference['sha256'][:12]}...); its statistics agree with the record "
        f"({shown}); kept with its own checksum (docs/datasets.md, Reproducibility)",
        file=sys.stderr,
    )
    return {
        "result": "statistics agree with the recorded build (bytes differ)",
        "recorded_sha256": reference["sha256"],
        "differs": differs,
        "checks": {
            c.figure: {"here": c.here, "recorded": c.recorded, "tolerance": c.tolerance}
            for c in checks
        },
    }
