#!/usr/bin/env bash
# README command 2: set up (including Debian's chromium for the browser tests) and run the tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh --with-browser
.venv/bin/ruff check .
.venv/bin/rasa data validate --domain domain --data data --config config.yml --fail-on-warnings
# Every process the tests start inherits this marker; afterwards none may be left (green or red).
export SUPPORT_TEST_RUN="$(.venv/bin/python -c 'import uuid; print(uuid.uuid4().hex)')"
status=0
.venv/bin/python -m pytest "$@" || status=$?
if ! .venv/bin/python -m tests.leftovers "$SUPPORT_TEST_RUN"; then
  echo "error: the test run left processes behind (listed above; now killed)" >&2
  [[ $status == 0 ]] && status=1
fi
exit $status
