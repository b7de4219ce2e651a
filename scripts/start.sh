#!/usr/bin/env bash
# README command 1: set up, train the model if missing or stale, start the whole stack.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
exec .venv/bin/python -m bot.runtime.launcher "$@"
