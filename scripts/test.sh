#!/usr/bin/env bash
# README command 2: set up (including Debian's chromium for the browser tests) and run the tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh --with-browser
.venv/bin/ruff check .
.venv/bin/rasa data validate --domain domain --data data --config config.yml --fail-on-warnings
exec .venv/bin/python -m pytest "$@"
