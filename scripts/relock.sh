#!/usr/bin/env bash
# Maintainers: a deliberate dependency upgrade, in one command.
#   bash scripts/relock.sh [--upgrade]
# 1. rewrites the locks (scripts/lock.sh; edit requirements/pins.txt first to move a pinned
#    package such as mujoco or numpy),
# 2. reinstalls .venv from the new lock,
# 3. re-makes every recorded dataset build and re-records its sha256, statistics, versions and
#    platform in src/shiftrl/data/checksums.json (`shiftrl data record --all`: hours for the
#    1M-transition builds; resumable, builds already recorded with these versions on this
#    platform are skipped),
# 4. runs the test suite.
# Commit the locks, checksums.json and docs/datasets.md together; benchmark pages name the
# versions they were measured with and are re-run separately (docs/benchmarks/README.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/lock.sh" "$@"
source "$ROOT/scripts/_venv.sh"
ensure_venv "[dev]"
"$VENV/bin/shiftrl" data record --all
"$VENV/bin/python" -m shiftrl.data.docs > "$ROOT/docs/datasets.md"
bash "$ROOT/scripts/test.sh"
