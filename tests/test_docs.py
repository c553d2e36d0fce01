"""Docs stay true: generated pages match the code."""

from pathlib import Path

from shiftrl.learners.docs import render

ROOT = Path(__file__).resolve().parents[1]


def test_learner_docs_are_current():
    assert (ROOT / "docs" / "learners.md").read_text() == render(), (
        "docs/learners.md is stale: run `python -m shiftrl.learners.docs > docs/learners.md`"
    )
