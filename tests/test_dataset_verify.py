"""Dataset builds against their records: bytes on the recorded platform and versions,
statistics elsewhere, and cached copies checked on every load (docs/datasets.md,
Reproducibility). Foreign platforms are simulated by editing a record, so these tests do not
depend on the machine they run on."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from shiftrl.cli import app
from shiftrl.core.errors import DataError
from shiftrl.data import records, registry
from shiftrl.data.io import load_npz, save_npz
from shiftrl.data.verify import (
    BEYOND_LIMIT,
    Z_LIMIT,
    compare,
    differences,
    platform_fingerprint,
)

runner = CliRunner()
TOY = "pointreach/mixed-v0"  # 4,000 transitions, 400 episodes, made in a fraction of a second
FOREIGN = {
    "machine": "x86_64",
    "cpu_vendor": "GenuineIntel",
    "cpu_model": "Some Other CPU",
    "isa": ["avx", "avx2", "fma"],
    "blas": "openblas 0.3.0 Zen",
}


@pytest.fixture
def private_records(tmp_path, monkeypatch):
    """An empty checksums.json and data cache of the test's own."""
    monkeypatch.setattr(records, "CHECKSUMS_FILE", tmp_path / "checksums.json")
    monkeypatch.setenv("SHIFTRL_DATA", str(tmp_path / "data"))
    return tmp_path / "checksums.json"


def record_with(path, **changes) -> dict:
    """Record a fresh build of TOY, then overwrite fields of its record (a simulated record
    made elsewhere)."""
    records.record_build(registry.make_dataset(TOY, verify=False))
    data = json.loads(path.read_text())
    data["datasets"][TOY][0].update(changes)
    path.write_text(json.dumps(data))
    return data["datasets"][TOY][0]


def test_a_foreign_record_gives_one_warning_line_and_a_usable_cached_dataset(
    private_records, capsys
):
    rec = record_with(
        private_records, sha256="0" * 64, platform=FOREIGN, made_with={"mujoco": "0.0.1"}
    )
    capsys.readouterr()
    ds = registry.get_dataset(TOY, progress=False)
    lines = capsys.readouterr().err.strip().splitlines()
    err = [line for line in lines if "warning" in line]
    assert len(err) == 1 and err[0].startswith("shiftrl: warning: pointreach/mixed-v0")
    assert lines[0].startswith("shiftrl: pointreach/mixed-v0 is not cached here: making it")
    assert "mujoco 0.0.1 ->" in err[0] and "blas openblas 0.3.0 Zen ->" in err[0]
    assert "statistics agree" in err[0] and "kept with its own checksum" in err[0]
    outcome = ds.metadata.provenance["verification"]
    assert (
        outcome["result"].startswith("statistics agree") and outcome["recorded_sha256"] == "0" * 64
    )
    assert outcome["checks"]["return mean"]["recorded"] == rec["return_mean"]
    # cached with its own checksum: the next load is silent and gives the same bytes
    again = registry.get_dataset(TOY, progress=False)
    assert again.checksum() == ds.checksum() != "0" * 64
    assert capsys.readouterr().err == ""
    assert ds.metadata.provenance["sha256"] == ds.checksum()


def test_a_record_without_a_platform_counts_as_foreign(private_records, capsys):
    rec = record_with(private_records, sha256="1" * 64)
    del rec["platform"]
    data = json.loads(private_records.read_text())
    data["datasets"][TOY][0] = rec
    private_records.write_text(json.dumps(data))
    ds = registry.make_dataset(TOY)
    assert ds.metadata.provenance["verification"]["differs"] == ["recorded platform unknown"]
    assert "recorded platform unknown" in capsys.readouterr().err


def test_a_statistical_mismatch_is_an_error_naming_the_figures(private_records):
    real = registry.make_dataset(TOY, verify=False)
    rec = record_with(private_records, sha256="0" * 64, platform=FOREIGN)
    data = json.loads(private_records.read_text())
    data["datasets"][TOY][0]["return_mean"] = rec["return_mean"] + 5.0  # ~17 standard errors
    data["datasets"][TOY][0]["episodes"] = rec["episodes"] + 1  # fixed-length episodes: exact
    private_records.write_text(json.dumps(data))
    with pytest.raises(DataError) as e:
        registry.get_dataset(TOY, progress=False)
    msg = str(e.value)
    assert "does not match the recorded build statistically" in msg
    here_mean = round(real.summary()["return_mean"], 3)
    assert f"return mean {here_mean:g} vs recorded {rec['return_mean'] + 5.0:g}" in msg
    assert "episodes 400 vs recorded 401" in msg and "blas openblas 0.3.0 Zen" in msg
    assert not registry.is_made(TOY)  # nothing cached
    registry.make_dataset(TOY, verify=False)  # --no-verify keeps it


def test_on_the_recorded_platform_and_versions_the_bytes_must_match(private_records):
    record_with(private_records, sha256="0" * 64)  # this platform, these versions
    with pytest.raises(DataError, match="does not reproduce the recorded build on the platform"):
        registry.make_dataset(TOY)
    # a second record from this platform with the real bytes: identical, whatever the first says
    record_with(private_records, sha256="0" * 64, platform=FOREIGN)
    records.record_build(registry.make_dataset(TOY, verify=False))
    assert len(records.records_for(TOY, 4000, 0)) == 2
    outcome = registry.make_dataset(TOY).metadata.provenance["verification"]
    assert outcome["result"] == "identical to a recorded build"


def test_a_changed_cache_is_an_error_on_load_until_made_again(private_records):
    ds = registry.get_dataset(TOY, progress=False)
    flat = registry.cache_dir(TOY) / registry.FLAT_FILE
    tampered = load_npz(flat)
    tampered.rewards = tampered.rewards + np.float32(1.0)  # metadata (and its sha256) unchanged
    save_npz(tampered, flat)
    with pytest.raises(
        DataError, match=r"changed or damaged.*shiftrl data make pointreach/mixed-v0 --force"
    ):
        registry.get_dataset(TOY, progress=False)
    r = runner.invoke(app, ["data", "info", TOY])
    assert r.exit_code == 2 and r.output.startswith("shiftrl: error:") and "--force" in r.output
    flat.write_bytes(b"not an npz")
    with pytest.raises(DataError, match="changed or damaged"):
        registry.load_cached(TOY)
    r = runner.invoke(app, ["data", "make", TOY, "--force", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert registry.get_dataset(TOY, progress=False).checksum() == ds.checksum()


def test_data_info_says_what_is_reproducible_and_record_adds_this_platform(private_records):
    record_with(private_records, sha256="0" * 64, platform=FOREIGN)
    r = runner.invoke(app, ["data", "info", TOY, "--json"])
    info = json.loads(r.stdout)
    assert info["reproducible"].startswith("statistics only") and "Zen" in info["recorded_on"][0]
    r = runner.invoke(app, ["data", "record", TOY, "--no-progress"])
    assert r.exit_code == 0 and "1 build(s) to re-record" in r.output, r.output
    info = json.loads(runner.invoke(app, ["data", "info", TOY, "--json"]).stdout)
    assert info["reproducible"].startswith("bytes") and len(info["recorded_on"]) == 2
    r = runner.invoke(app, ["data", "record", "--all", "--no-progress"])
    assert "0 build(s) to re-record" in r.output  # resumable: what is recorded here is skipped
    r = runner.invoke(app, ["data", "record"])
    assert r.exit_code == 2 and "--all" in r.output


def test_statistical_checks_match_hand_computed_tolerances():
    here = {
        "transitions": 1000,
        "episodes": 100,
        "return_mean": 10.0,
        "return_std": 2.0,
        "length_mean": 10.0,
        "length_std": 5.0,
        "normalized_score": 50.0,
        "score_per_return": 0.5,
    }
    rec = {
        "transitions": 1000,
        "episodes": 135,
        "return_mean": 11.4,
        "return_min": 0.0,
        "return_max": 20.0,
        "normalized_score": 50.7,
    }
    returns = np.concatenate([np.full(79, 10.0), np.full(21, 25.0)])  # 21 above the max
    checks = {c.figure: c for c in compare(rec, here, returns)}
    se_mean = np.sqrt(2) * 2.0 / np.sqrt(100)  # 0.2828
    assert checks["return mean"].tolerance == pytest.approx(Z_LIMIT * se_mean + 1e-3)
    assert checks["return mean"].ok  # |11.4 - 10| = 1.4 < 1.415
    # renewal count: sqrt(2 * 1000 * 25 / 1000) = 7.07 -> ceil(5 * 7.07) = 36
    assert checks["episodes"].tolerance == 36 and checks["episodes"].ok
    assert checks["normalized score"].tolerance == pytest.approx(Z_LIMIT * se_mean * 0.5 + 0.01)
    above = checks["episodes above the recorded maximum return"]
    assert above.here == 21 > BEYOND_LIMIT and not above.ok
    assert checks["episodes below the recorded minimum return"].here == 0
    assert checks["transitions"].ok
    rec["return_mean"] = 11.42
    assert not {c.figure: c for c in compare(rec, here, returns)}["return mean"].ok
    here["length_std"] = 0.0  # fixed-length episodes: the count must match exactly
    assert {c.figure: c for c in compare(rec, here, returns)}["episodes"].tolerance == 0


def test_platform_fingerprint_and_differences():
    here = platform_fingerprint()
    assert set(here) == {"machine", "cpu_vendor", "cpu_model", "isa", "blas"}
    assert here["blas"] and here["isa"] == sorted(here["isa"])
    rec = {"made_with": {"numpy": "1.0", "mujoco": "4.0.0"}, "platform": dict(here)}
    assert differences(rec, {"numpy": "1.0", "mujoco": "4.0.0"}, here) == []
    assert differences(rec, {"numpy": "1.0", "mujoco": "4.0.1"}, here) == ["mujoco 4.0.0 -> 4.0.1"]
    other = dict(here, blas="openblas 0.3.31 SkylakeX", isa=[*here["isa"], "zz_new"])
    assert differences(rec, rec["made_with"], other) == [
        "CPU features +zz_new",
        f"blas {here['blas']} -> openblas 0.3.31 SkylakeX",
    ]


def test_size_qualified_ids_name_a_build_everywhere_an_id_is_taken(private_records, capsys):
    import shiftrl

    assert registry.parse_id("pointreach/mixed-n1000-s2-v0") == ("pointreach/mixed-v0", 1000, 2)
    assert registry.parse_id("pointreach/mixed-n1000-v0") == ("pointreach/mixed-v0", 1000, None)
    assert registry.qualified_id(TOY, 1000, 2) == "pointreach/mixed-n1000-s2-v0"
    assert registry.qualified_id(TOY, 4000, 0) == TOY
    ds = shiftrl.load_dataset("pointreach/mixed-n1000-s2-v0")
    assert len(ds) == 1000 and ds.metadata.provenance["seed"] == 2
    err = capsys.readouterr().err
    assert (
        "pointreach/mixed-n1000-s2-v0 is not cached here: making it now (1,000 transitions" in err
    )
    assert registry.is_made(TOY, 1000, 2)  # the same cache entry as --size 1000 --seed 2
    r = runner.invoke(app, ["data", "make", TOY, "--size", "1000", "--seed", "2"])
    assert r.exit_code == 0 and "use it as: --dataset pointreach/mixed-n1000-s2-v0" in r.output
    r = runner.invoke(app, ["data", "make", "pointreach/mixed-n1000-v0", "--size", "5"])
    assert r.exit_code == 2 and "names size 1000" in r.output
    with pytest.raises(DataError, match="unknown dataset id"):
        registry.parse_id("pointreach/nothing-n10-v0")


def test_a_build_prints_plain_progress_lines_when_not_on_a_terminal(
    private_records, capsys, monkeypatch
):
    from shiftrl.core import progress

    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    registry.get_dataset(TOY, 1000, 3, progress=True)
    lines = [
        line for line in capsys.readouterr().err.splitlines() if line.startswith("shiftrl: making ")
    ]
    assert any(
        line.startswith("shiftrl: making pointreach/mixed-v0: 1,000/1,000 transitions (100%)")
        for line in lines
    )
