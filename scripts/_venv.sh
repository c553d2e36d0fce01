# Sourced by scripts/*.sh: make .venv (Python >= 3.11) if missing and install shiftrl into it
# from the lock: requirements.lock for "", requirements-dev.lock for "[dev]" (every
# transitive version pinned, with hashes; scripts/lock.sh writes them). The versions are those
# the recorded dataset checksums and the published figures were made with.
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
  local lock="$ROOT/requirements.lock"
  if [ "$extras" = "[dev]" ]; then lock="$ROOT/requirements-dev.lock"; fi
  # reinstall only when pyproject.toml or the lock changed since the last install
  local stamp="$VENV/.shiftrl-install${extras//[^a-z]/-}"
  if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
    # exactly the locked files (hash-checked), then shiftrl itself without resolving anything
    _pip install --quiet --require-hashes --no-deps -r "$lock"
    _pip install --quiet --no-deps --no-build-isolation -e "$ROOT"
    "$VENV/bin/python" -c "import shiftrl" && touch "$stamp"
  fi
}

# pip with its exit status kept and the noise of machines' unused local indexes dropped
_pip() {
  local out rc=0
  out="$("$VENV/bin/python" -m pip "$@" 2>&1)" || rc=$?
  if [ -n "$out" ]; then printf "%s\n" "$out" | grep -v "^WARNING: Location" >&2 || true; fi
  return "$rc"
}
