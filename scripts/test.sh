#!/usr/bin/env bash
# Runs the whole test suite: unit, fuzz (briefly), and integration tests with real clients,
# on a Debug build with AddressSanitizer and UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
cmake --preset debug >/dev/null
cmake --build --preset debug
ctest --preset debug "$@"
