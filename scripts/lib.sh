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

# Debian packages a script needs, installed when one of their COMMANDS is missing (as root; otherwise it
# says how). What fails without them is the caller's to say: the rest still runs.
#   ensure_packages "COMMANDS" "PACKAGES" "WHAT FAILS WITHOUT THEM"
ensure_packages() {
  local command missing=""
  for command in $1; do command -v "$command" >/dev/null 2>&1 || missing=1; done
  if [ -z "$missing" ]; then return 0; fi
  if [ "$(id -u)" != 0 ]; then
    echo "$1 not installed; run as root, or: sudo apt-get install -y $2" >&2
    return 0
  fi
  echo "==> installing $2" >&2
  # shellcheck disable=SC2086  # the package list splits into words on purpose
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $2; } >&2 \
    || echo "installing $2 failed; $3" >&2
}

# tests/test_debug_page.py drives Debian's headless Chromium; installed like scripts/mariadb installs
# MariaDB. A CJK font makes the page's Chinese readable in screenshots.
ensure_chromium() {
  ensure_packages "chromium chromedriver" "chromium chromium-driver fonts-wqy-microhei" \
    "tests/test_debug_page.py will fail"
}

# bench/serving_limit.py drives its HTTP load with wrk.
ensure_wrk() {
  ensure_packages wrk wrk "bench/serving_limit.py cannot drive the load"
}
