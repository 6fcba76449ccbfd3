# Shared by scripts/quickstart and scripts/test: the project's virtualenv, created or refreshed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3.11}"

setup_venv() {
  local stamp="$ROOT/.venv/.installed"
  if [ ! -x "$ROOT/.venv/bin/python" ]; then
    echo "==> creating .venv with $PYTHON" >&2
    "$PYTHON" -m venv "$ROOT/.venv"
  fi
  # Reinstall only when the declared dependencies changed.
  if [ ! -f "$stamp" ] || [ "$ROOT/setup.cfg" -nt "$stamp" ]; then
    echo "==> installing es-faq and its pinned dependencies" >&2
    "$ROOT/.venv/bin/python" -m pip install -q --upgrade pip >&2
    "$ROOT/.venv/bin/python" -m pip install -q -e "$ROOT[test]" >&2
    touch "$stamp"
  fi
  export PATH="$ROOT/.venv/bin:$PATH"
}
