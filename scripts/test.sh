#!/usr/bin/env bash
# Set up (first time only) and run the checks: ruff lint + format check, then the test suite.
source "$(dirname "$0")/_venv.sh"
ensure_venv "[dev]"
cd "$ROOT"
"$VENV/bin/ruff" check src tests
"$VENV/bin/ruff" format --check src tests README.md docs
exec "$VENV/bin/python" -m pytest "$@"
