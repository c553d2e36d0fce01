# Sourced by scripts/*.sh: make .venv (Python >= 3.11) if missing and install shiftrl into it.
# Usage: ensure_venv EXTRAS   (e.g. "" or "[dev]")
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SHIFTRL_VENV:-$ROOT/.venv}"

ensure_venv() {
  local extras="$1"
  if [ ! -x "$VENV/bin/python" ]; then
    local py=""
    for cand in python3.11 python3.12 python3.13 python3; do
      if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        py="$cand"; break
      fi
    done
    if [ -z "$py" ]; then echo "shiftrl needs Python >= 3.11 (none found on PATH)" >&2; exit 1; fi
    "$py" -m venv "$VENV"
  fi
  # reinstall only when pyproject.toml changed since the last install
  local stamp="$VENV/.shiftrl-install${extras//[^a-z]/-}"
  if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT$extras" 2>&1 | grep -v "^WARNING: Location" || true
    "$VENV/bin/python" -c "import shiftrl" && touch "$stamp"
  fi
}
