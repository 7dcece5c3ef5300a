#!/usr/bin/env bash
# Installs what is missing, builds a release trellisd and runs it on its embedded default (SQLite in ./trellis-data).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target trellisd trellis
exec build/release/src/exe/trellisd --data-dir "${TRELLIS_DATA_DIR:-./trellis-data}" "$@"
