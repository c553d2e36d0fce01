"""Docs stay true: generated pages match the code."""

from pathlib import Path

from shiftrl.learners.docs import render

ROOT = Path(__file__).resolve().parents[1]


def test_learner_docs_are_current():
    assert (ROOT / "docs" / "learners.md").read_text() == render(), (
        "docs/learners.md is stale: run `python -m shiftrl.learners.docs > docs/learners.md`"
    )


def test_relative_links_in_docs_resolve():
    """Every relative link or image in README, CHANGELOG and docs/ points at a file."""
    import re

    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
    broken = []
    for page in pages:
        for m in re.finditer(r"\]\(([^)\s]+)\)|src=\"([^\"]+)\"", page.read_text()):
            target = (m.group(1) or m.group(2)).split("#")[0]
            if target and not re.match(r"[a-z]+:", target) and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, "broken links: " + ", ".join(broken)
