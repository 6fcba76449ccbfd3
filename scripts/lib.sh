# Shared by scripts/quickstart and scripts/test: the project's virtualenv, created or refreshed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3.11}"

# setup_venv [EXTRAS]: e.g. "test,train" for the test suite (the [train] extra brings torch).
setup_venv() {
  local extras="${1:-}"
  local stamp="$ROOT/.venv/.installed${extras:+-$extras}"
  if [ ! -x "$ROOT/.venv/bin/python" ]; then
    echo "==> creating .venv with $PYTHON" >&2
    "$PYTHON" -m venv "$ROOT/.venv"
  fi
  # Reinstall only when the declared dependencies changed.
  if [ ! -f "$stamp" ] || [ "$ROOT/setup.cfg" -nt "$stamp" ]; then
    echo "==> installing es-faq and its pinned dependencies" >&2
    "$ROOT/.venv/bin/python" -m pip install -q --upgrade pip >&2
    "$ROOT/.venv/bin/python" -m pip install -q -e "$ROOT${extras:+[$extras]}" >&2
    touch "$stamp"
  fi
  export PATH="$ROOT/.venv/bin:$PATH"
}

# tests/test_debug_page.py drives Debian's headless Chromium; installed like scripts/mariadb installs
# MariaDB. A CJK font makes the page's Chinese readable in screenshots. When this cannot install
# them, that test fails and says why; the rest of the suite still runs.
ensure_chromium() {
  if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" != 0 ]; then
    echo "chromium/chromedriver are not installed; run as root, or: sudo apt-get install -y chromium chromium-driver" >&2
    return 0
  fi
  echo "==> installing chromium, chromium-driver and a CJK font" >&2
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver \
      fonts-wqy-microhei; } >&2 || echo "installing chromium failed; tests/test_debug_page.py will fail" >&2
}
