"""`shiftrl data ...`: make, list and inspect the built-in datasets."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from shiftrl.core.cli_errors import user_errors
from shiftrl.core.progress import PROGRESS_HELP, from_flag

data_app = typer.Typer(
    help="Built-in datasets (toy tasks and the behaviour-policy zoo): make, list, inspect.",
    no_args_is_help=True,
)


SizeOpt = Annotated[
    int | None,
    typer.Option(
        "--size",
        help="transitions (trajectories for neorl-* levels; default: the dataset's default size)",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="collection seed")]


@data_app.command("make")
@user_errors
def make(
    dataset_id: Annotated[str, typer.Argument(help="e.g. hopper-mass-2.0/medium-v0")],
    size: SizeOpt = None,
    seed: SeedOpt = 0,
    force: Annotated[bool, typer.Option("--force", help="make it again even if cached")] = False,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="check the recorded sha256, if any")
    ] = True,
    record: Annotated[
        bool,
        typer.Option("--record", help="maintainers: record this build in checksums.json"),
    ] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help=PROGRESS_HELP)] = True,
) -> None:
    """Make a dataset (deterministic from ID, size and seed) and cache it under $SHIFTRL_DATA."""
    progress = from_flag(progress)
    from shiftrl.data import registry

    cid, size, seed = registry.resolve_build(dataset_id, size, seed)
    if registry.is_made(cid, size, seed) and not force:
        ds = registry.get_dataset(cid, size, seed)
        typer.echo(f"already made: {registry.cache_dir(cid, size, seed)} (--force to remake)")
    else:
        if force:
            registry.remove_cached(cid, size, seed)
        ds = registry.get_dataset(cid, size, seed, progress=progress, verify=verify)
        typer.echo(f"made {cid}: {registry.cache_dir(cid, size, seed)}")
    s = ds.summary()
    typer.echo(
        f"{s['transitions']} transitions, {s['episodes']} episodes, episode return "
        f"mean {s['return_mean']:.1f} (min {s['return_min']:.1f}, max {s['return_max']:.1f}), "
        f"sha256 {ds.checksum()}"
    )
    outcome = ds.metadata.provenance.get("verification", {}).get("result")
    if outcome:
        typer.echo(f"against the recorded build: {outcome}")
    typer.echo(f"use it as: --dataset {registry.qualified_id(cid, size, seed)}")
    if record:
        from shiftrl.data import records

        rec = records.record_build(ds)
        typer.echo(f"recorded in {records.CHECKSUMS_FILE}: size {rec['size']}, seed {rec['seed']}")


@data_app.command("record")
@user_errors
def record_all(
    dataset_ids: Annotated[
        list[str] | None, typer.Argument(help="IDs to re-record (default: with --all)")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="every recorded build")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help=PROGRESS_HELP)] = True,
) -> None:
    """Maintainers: re-make recorded builds here and record them for this platform and these
    versions (after a lock change: scripts/relock.sh). Builds already recorded here are
    skipped, so an interrupted run resumes; records of other platforms are kept."""
    progress = from_flag(progress)
    from shiftrl.core.errors import ConfigError
    from shiftrl.data import records, registry

    if not all_ and not dataset_ids:
        raise ConfigError("name dataset IDs to re-record, or pass --all")
    wanted = set(registry.canonical(d) for d in dataset_ids or [])
    todo = []
    for did, recs in records.recorded_builds().items():
        if (wanted and did not in wanted) or not registry.is_registered(did):
            continue
        inputs = registry.spec_of(did).inputs()
        for size, seed in sorted({(r["size"], r["seed"]) for r in recs}):
            if not records.is_recorded_here(did, size, seed, inputs):
                todo.append((did, size, seed))
    todo.sort(key=lambda t: t[1])  # smallest first: the most records early in a long run
    typer.echo(
        f"{len(todo)} build(s) to re-record here ({records.fmt_versions(records.versions())})"
    )
    for i, (did, size, seed) in enumerate(todo, 1):
        unit = registry.spec_of(did).size_unit
        label = f"{did} [{i}/{len(todo)}]"
        with registry.MakeProgress(label, size, enabled=progress, unit=unit) as bar:
            ds = registry.make_dataset(did, size, seed, progress=bar.update, verify=True)
        rec = records.record_build(ds)
        result = ds.metadata.provenance["verification"]["result"]
        typer.echo(f"{did} (size {size}, seed {seed}): sha256 {rec['sha256'][:16]}... ({result})")


@data_app.command("list")
@user_errors
def list_(
    pattern: Annotated[
        str | None, typer.Argument(help="only IDs containing this text, e.g. mass-2.0 or expert")
    ] = None,
    robot: Annotated[str | None, typer.Option("--robot", help="only this robot's datasets")] = None,
    made: Annotated[bool, typer.Option("--made", help="only datasets made here")] = False,
    wide: Annotated[bool, typer.Option("--wide", help="also the cache folders")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Every dataset that exists or can be made (made: its cached builds, by qualified ID)."""
    from shiftrl.data import registry

    rows = [
        r
        for r in list_rows()
        if (pattern is None or pattern in r["id"] or any(pattern in a for a in r["aliases"]))
        and (robot is None or r["id"].split("/")[0].split("-")[0] == robot)
        and (not made or r["builds"])
    ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} datasets (cache: {registry.data_root()})")
    table.add_column("id (= alias)", no_wrap=True)
    table.add_column("made here: size (seed) = qualified ID", overflow="fold")
    if wide:
        table.add_column("where", overflow="fold")
    for r in rows:
        cells = [
            r["id"] + "".join(f"\n= {a}" for a in r["aliases"]),
            "\n".join(
                f"{b['size']:,} ({b['seed']})"
                + ("" if b["qualified_id"] == r["id"] else f" = {b['qualified_id']}")
                for b in r["builds"]
            )
            or f"- (default size {r['default_size']:,})",
        ]
        if wide:
            cells.append("\n".join(b["path"] for b in r["builds"]) or "-")
        table.add_row(*cells)
    Console().print(table)
    from shiftrl import zoo

    n = len(zoo.manifest()["policies"])
    typer.echo(
        f"{n} zoo variant(s) with behaviour policies; datasets for other variants appear once "
        "the zoo has policies for them. Make one with `shiftrl data make ID`; filter with "
        "`shiftrl data list PATTERN --robot ROBOT --made`."
    )


def list_rows() -> list[dict[str, Any]]:
    from shiftrl.data import registry

    rows = []
    for did in registry.dataset_ids():
        spec = registry.REGISTRY[did]
        builds = registry.cached_builds(did)
        for b in builds:
            b["qualified_id"] = registry.qualified_id(did, b["size"], b["seed"])
        rows.append(
            {
                "id": did,
                "aliases": sorted(a for a, t in registry.ALIASES.items() if t == did),
                "origin": spec.origin,
                "status": "made" if builds else "can be made",
                "default_size": spec.default_size,
                "builds": builds,
            }
        )
    return rows


@data_app.command("info")
@user_errors
def info(
    dataset_id: Annotated[str, typer.Argument(help="e.g. hopper/medium-v0")],
    size: SizeOpt = None,
    seed: SeedOpt = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Provenance, size, return statistics, reference scores and checksum of a dataset."""
    data = dataset_info(dataset_id, size, seed)
    if as_json:
        typer.echo(json.dumps(data, default=str))
        return
    prov = data.pop("provenance", {})
    lines = [(k, v) for k, v in data.items()] + [(f"provenance.{k}", v) for k, v in prov.items()]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        if isinstance(value, dict | list):
            value = json.dumps(value, default=str)
        typer.echo(f"{key:>{width}}: {value}")


def dataset_info(dataset_id: str, size: int | None = None, seed: int = 0) -> dict[str, Any]:
    """What `shiftrl data info` prints, as a dict."""
    from shiftrl.data import registry
    from shiftrl.envs import variant_of
    from shiftrl.envs.reference import (
        D4RL_REFERENCE,
        normalized_score,
        reference_scores,
        reference_source,
    )

    cid, size, seed = registry.resolve_build(dataset_id, size, seed)
    spec = registry.REGISTRY[cid]
    n = spec.default_size if size is None else size
    out: dict[str, Any] = {"id": cid, "qualified_id": registry.qualified_id(cid, n, seed)}
    aliases = sorted(a for a, t in registry.ALIASES.items() if t == cid)
    if aliases:
        out["aliases"] = aliases
    out["description"] = spec.description
    out["env_id"] = spec.env_id
    out.update({k: v for k, v in spec.info.items() if k not in ("env_id", "windows")})
    ref = reference_scores(spec.env_id) if spec.env_id else None
    out["reference_scores"] = (
        {"random": ref[0], "expert": ref[1]} if ref else "none known for this environment"
    )
    out["reference_source"] = reference_source(spec.env_id) if spec.env_id else "none"
    variant = variant_of(spec.env_id) if spec.env_id else None
    d4rl = D4RL_REFERENCE.get(variant.base_env_id) if variant is not None else None
    if d4rl is not None:  # published numbers of the same robot, to compare with papers
        out["d4rl_reference_scores"] = {"random": d4rl[0], "expert": d4rl[1]}
    if variant is not None and variant.observation == "neorl":
        from shiftrl.envs.reference import NEORL_REFERENCE

        lo, hi = NEORL_REFERENCE[variant.robot]
        out["neorl_reference_scores"] = {"min": lo, "max": hi}
    beh = spec.info.get("behaviour_return")
    if ref and isinstance(beh, int | float):
        out["behaviour_normalized"] = round(normalized_score(beh, ref), 2)
    out["size"] = n
    out["seed"] = seed
    out["command"] = registry.make_command(cid, n, seed)
    out["minari_id"] = registry.minari_id(cid, n, seed)
    from shiftrl.data import records, verify

    recorded = records.recorded_build(cid, n, seed)
    here_platform = verify.platform_fingerprint()
    recs = [r for r in records.records_for(cid, n, seed) if r.get("inputs_sha256") == spec.inputs()]
    out["platform_here"] = verify.describe_platform(here_platform)
    if not recs:
        out["reproducible"] = "no recorded build of this size and seed: nothing to check against"
    elif records.is_recorded_here(cid, n, seed, spec.inputs()):
        out["reproducible"] = "bytes: a record was made on this platform with these versions"
    else:
        differs = verify.differences(recs[0], records.versions(), here_platform)
        out["reproducible"] = (
            f"statistics only (bytes differ by platform; differs from the record: "
            f"{', '.join(differs)})"
        )
    out["recorded_on"] = [
        f"{verify.describe_platform(r.get('platform'))}; {records.fmt_versions(r.get('made_with', {}))}"
        for r in recs
    ]
    if registry.is_made(cid, n, seed):
        ds = registry.load_cached(cid, n, seed)
        s = ds.summary()
        meta = ds.metadata
        dref = (
            (meta.ref_min_score, meta.ref_max_score)
            if meta.ref_min_score is not None and meta.ref_max_score is not None
            else None
        )
        sha = ds.checksum()
        out.update(
            status="made",
            path=str(registry.cache_dir(cid, n, seed)),
            transitions=s["transitions"],
            episodes=s["episodes"],
            return_mean=round(s["return_mean"], 2),
            return_min=round(s["return_min"], 2),
            return_max=round(s["return_max"], 2),
            normalized_score=round(normalized_score(s["return_mean"], dref), 2) if dref else None,
            dataset_reference_scores=list(dref) if dref else None,
            sha256=sha,
            recorded_sha256=[r["sha256"] for r in recs] if recs else None,
            verification=meta.provenance.get("verification", {}).get("result", "not recorded"),
            provenance=meta.provenance,
        )
    else:
        out["status"] = f"not made yet: `{out['command']}`"
        if recorded:
            out["recorded_build"] = {k: v for k, v in recorded.items() if k != "platform"}
    return out
