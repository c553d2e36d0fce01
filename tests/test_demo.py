"""`shiftrl demo` runs end to end (at a tiny budget): both parts, tables and plots."""

from shiftrl.demo import SHIFT_CASES, run_demo


def test_demo_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTRL_DATA", str(tmp_path / "data"))
    runs = run_demo(tmp_path / "demo", steps=100, progress=False)
    assert {"bc", "td3bc", "iql", *SHIFT_CASES} == set(runs)
    assert (tmp_path / "demo" / "demo_scores.png").exists()
    assert (tmp_path / "demo" / "demo_shift_scores.png").exists()
    dara = runs["target + source, DARA"]
    assert dara.config.addons[0]["name"] == "dara" and len(dara.config.sources) == 1
    assert all(r.rows and r.rows[-1]["step"] == 100 for r in runs.values())
