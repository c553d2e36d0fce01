"""Check a built-in dataset against its recorded build: bytes where they can be promised,
statistics everywhere else.

Why two levels: a build is deterministic given (ID, size, seed) *on one platform*. The
behaviour policy's forward pass is a small matrix product, and NumPy hands it to OpenBLAS,
which picks a kernel for the CPU it runs on (measured: the recorded builds reproduce here with
`OPENBLAS_CORETYPE=SkylakeX` and not with the kernel this Zen CPU gets by default); a different
kernel rounds differently, and a physics release can change the bits of the simulation. One
differing bit makes the rollout diverge, so the rest of the build is a fresh sample of the
same distribution. Hence:

- same platform (CPU vendor/model, the instruction-set features that change code generation,
  the BLAS kernel) and same library versions as the record: the sha256 must match; a
  mismatch is an error (the build is broken, not foreign).
- otherwise: the build is compared with the record statistically (`compare`): transitions
  exactly (episodes, for a build sized in trajectories), episode count (transitions) and
  mean episode return within `Z_LIMIT` standard errors, and at
  most `BEYOND_LIMIT` episodes beyond the recorded minimum or maximum return. Agreement
  keeps the build (cached with its own sha256, a one-line warning saying what differs);
  disagreement is an error naming the figures.

The tolerances come from measured spread (`scripts/measure_dataset_spread.py`, summarised in
docs/datasets.md): seed-to-seed differences bound cross-platform ones, because a diverged
build is statistically a build with another seed.
"""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shiftrl.data.dataset import TransitionDataset

Z_LIMIT = 5.0
"""Episode count and mean return may differ by this many standard errors of the difference.
Measured z-scores between seeds stay within +-3 (docs/datasets.md); 5 keeps the chance of a
false alarm over all recorded builds (74 builds x 2 statistics) near 1e-4 for a Gaussian."""

BEYOND_LIMIT = 20
"""At most this many episodes of a build may lie beyond the recorded minimum (or maximum)
return. Sample extremes move too much to compare directly (measured between seeds: up to 4
episode-return standard deviations, 45% of the return range, for right-skewed returns), but
a rank count is distribution-free: with equally many episodes in both builds, the chance
that the new build holds the k episodes beyond the record's extreme is about 2**-k, so 20
gives ~1e-6 per check."""

_ISA_FLAGS = frozenset(
    {
        # x86-64: the vector widths and fused operations that change BLAS kernels and XLA code
        "sse4_1",
        "sse4_2",
        "avx",
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512dq",
        "avx512cd",
        "avx512bw",
        "avx512vl",
        "avx512ifma",
        "avx512vbmi",
        "avx512_vnni",
        "avx512_bf16",
        "avx512_fp16",
        "avx_vnni",
        "amx_tile",
        # aarch64
        "asimd",
        "asimdhp",
        "fphp",
        "sve",
        "sve2",
        "bf16",
        "i8mm",
    }
)


# ---- the platform -----------------------------------------------------------------------------
def platform_fingerprint() -> dict[str, Any]:
    """What decides the bits of a build besides library versions: the CPU and the BLAS kernel."""
    vendor, model, flags = _cpu_info()
    return {
        "machine": platform.machine(),
        "cpu_vendor": vendor,
        "cpu_model": model,
        "isa": sorted(flags & _ISA_FLAGS),
        "blas": blas_kernel(),
    }


def _cpu_info() -> tuple[str, str, set[str]]:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        fields: dict[str, str] = {}
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if not line.strip():
                if fields:
                    break  # the first processor is enough
                continue
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
        vendor = fields.get("vendor_id") or fields.get("CPU implementer", "")
        model = fields.get("model name") or fields.get("CPU part", "")
        flags = set((fields.get("flags") or fields.get("Features", "")).split())
        return vendor, model, flags
    return "", platform.processor(), set()


def blas_kernel() -> str:
    """The BLAS library NumPy uses and the kernel it chose for this CPU, e.g. 'openblas 0.3.30
    Haswell' (threadpoolctl reads it from the loaded library)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - a declared dependency
        return "unknown"
    libs = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not libs:
        return "none"
    i = libs[0]
    return " ".join(
        str(x) for x in (i.get("internal_api"), i.get("version"), i.get("architecture")) if x
    )


def describe_platform(p: dict[str, Any] | None) -> str:
    if not p:
        return "platform not recorded"
    isa = [f for f in p.get("isa", []) if f.startswith(("avx512f", "avx2", "sve", "asimd"))]
    return f"{p.get('cpu_model') or p.get('machine')}, {'/'.join(isa) or 'no SIMD flags'}, BLAS {p.get('blas')}"


# ---- statistics -------------------------------------------------------------------------------
def build_statistics(ds: TransitionDataset) -> dict[str, Any]:
    """What a record keeps and the statistical check compares (return figures rounded as
    `checksums.json` stores them)."""
    from shiftrl.envs.reference import normalized_score

    rets = ds.episode_returns()
    lens = ds.episode_lengths()
    meta = ds.metadata
    ref = (
        (meta.ref_min_score, meta.ref_max_score)
        if meta.ref_min_score is not None and meta.ref_max_score is not None
        else None
    )
    mean = float(rets.mean())
    return {
        "transitions": len(ds),
        "episodes": int(len(rets)),
        "return_mean": round(mean, 3),
        "return_std": round(float(rets.std(ddof=1)) if len(rets) > 1 else 0.0, 3),
        "return_min": round(float(rets.min()), 3),
        "return_max": round(float(rets.max()), 3),
        "length_mean": round(float(lens.mean()), 3),
        "length_std": round(float(lens.std(ddof=1)) if len(lens) > 1 else 0.0, 3),
        "normalized_score": round(normalized_score(mean, ref), 2) if ref else None,
        "score_per_return": 100.0 / (ref[1] - ref[0]) if ref and ref[1] != ref[0] else None,
    }


@dataclass(frozen=True)
class Check:
    figure: str
    recorded: float
    here: float
    tolerance: float
    count: bool = False
    """A count of episodes beyond a recorded figure (`recorded` is that figure)."""

    @property
    def ok(self) -> bool:
        if self.count:
            return self.here <= self.tolerance
        return abs(self.here - self.recorded) <= self.tolerance

    def __str__(self) -> str:
        if self.count:
            return f"{self.figure} {self.recorded:g}: {self.here:g} (at most {self.tolerance:g})"
        return (
            f"{self.figure} {self.here:g} vs recorded {self.recorded:g} "
            f"(tolerance ±{self.tolerance:.3g})"
        )


def compare(
    recorded: dict[str, Any],
    here: dict[str, Any],
    returns: np.ndarray,
    size_unit: str = "transitions",
) -> list[Check]:
    """The statistical checks of a build (`build_statistics`, and its episode returns) against
    its record.

    Standard errors use this build's own spread, which under agreement estimates the
    record's: mean return: sqrt(2) * std / sqrt(episodes); episode count, a renewal count over
    a fixed number of transitions N: sqrt(2 * N * var(length) / mean(length)^3). A build sized
    in trajectories (`size_unit`, NeoRL-style) fixes the episodes instead, and its transitions
    are a sum of episode lengths: sqrt(2 * episodes) * std(length).
    """
    n_eps = max(int(here["episodes"]), 1)
    std = float(here["return_std"])
    se_mean = math.sqrt(2.0) * std / math.sqrt(n_eps)
    mu_len, sd_len = float(here["length_mean"]), float(here["length_std"])
    se_eps = math.sqrt(2.0 * here["transitions"] * sd_len**2 / mu_len**3) if mu_len > 0 else 0.0
    rounding = 1e-3  # checksums.json keeps three decimals
    lo, hi = recorded["return_min"] - rounding, recorded["return_max"] + rounding
    if size_unit == "trajectories":
        se_transitions = math.sqrt(2.0 * n_eps) * sd_len
        counts = [
            Check(
                "transitions",
                recorded["transitions"],
                here["transitions"],
                math.ceil(Z_LIMIT * se_transitions),
            ),
            Check("episodes", recorded["episodes"], here["episodes"], 0),
        ]
    else:
        counts = [
            Check("transitions", recorded["transitions"], here["transitions"], 0),
            Check("episodes", recorded["episodes"], here["episodes"], math.ceil(Z_LIMIT * se_eps)),
        ]
    checks = [
        *counts,
        Check(
            "return mean",
            recorded["return_mean"],
            here["return_mean"],
            Z_LIMIT * se_mean + rounding,
        ),
        Check(
            "episodes below the recorded minimum return",
            recorded["return_min"],
            int(np.sum(returns < lo)),
            BEYOND_LIMIT,
            count=True,
        ),
        Check(
            "episodes above the recorded maximum return",
            recorded["return_max"],
            int(np.sum(returns > hi)),
            BEYOND_LIMIT,
            count=True,
        ),
    ]
    if recorded.get("normalized_score") is not None and here.get("normalized_score") is not None:
        # the normalized score is the mean return rescaled: the same test in its units
        scale = abs(here.get("score_per_return") or 0.0)
        checks.append(
            Check(
                "normalized score",
                recorded["normalized_score"],
                here["normalized_score"],
                Z_LIMIT * se_mean * scale + 0.01,
            )
        )
    return checks


def differences(
    recorded: dict[str, Any], here_versions: dict[str, str], here_platform: dict[str, Any]
) -> list[str]:
    """What differs between the record's versions/platform and this machine, as short phrases."""
    out = []
    rec_versions = recorded.get("made_with", {})
    for pkg in sorted(set(rec_versions) | set(here_versions)):
        a, b = rec_versions.get(pkg, "?"), here_versions.get(pkg, "?")
        if a != b:
            out.append(f"{pkg} {a} -> {b}")
    rec_platform = recorded.get("platform")
    if rec_platform is None:
        out.append("recorded platform unknown")
    else:
        for key in ("machine", "cpu_vendor", "cpu_model", "isa", "blas"):
            a, b = rec_platform.get(key), here_platform.get(key)
            if a != b:
                if key == "isa":
                    gained = sorted(set(b or []) - set(a or []))
                    lost = sorted(set(a or []) - set(b or []))
                    out.append(
                        "CPU features "
                        + " ".join([*(f"+{f}" for f in gained), *(f"-{f}" for f in lost)])
                    )
                else:
                    out.append(f"{key.replace('_', ' ')} {a} -> {b}")
    return out
