"""Publish a study's report into docs/benchmarks: `python scripts/publish_report.py STUDY NAME`.

Writes `shiftrl report STUDY`, then replaces everything below the marker line in
docs/benchmarks/NAME.md with the report (its title dropped, image links pointed at
docs/benchmarks/NAME/plots/, which receives a copy of the plots). What is above the
marker (the hand-written summary: budget, machine, which claims hold) is kept, so a page
can be re-published when more runs finish. A page without the marker is created with it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from shiftrl.bench.report import write_report

MARKER = "<!-- generated below by scripts/publish_report.py; edit above this line -->"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"


def publish(study: Path, name: str) -> Path:
    report = write_report(study).read_text()
    body = report.split("\n", 1)[1].lstrip("\n")  # the page has its own title
    body = body.replace("](plots/", f"]({name}/plots/").replace(
        'src="plots/', f'src="{name}/plots/'
    )
    plots = DOCS / name / "plots"
    shutil.rmtree(plots, ignore_errors=True)
    shutil.copytree(study / "plots", plots)
    page = DOCS / f"{name}.md"
    head = page.read_text().split(MARKER)[0] if page.exists() else f"# {name}\n\n"
    page.write_text(f"{head.rstrip()}\n\n{MARKER}\n\n{body}")
    return page


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/publish_report.py STUDY_DIR NAME")
    print(publish(Path(sys.argv[1]), sys.argv[2]))
