#!/usr/bin/env bash
# Runs the whole test suite: unit, fuzz (briefly), and integration tests with real clients,
# on a Debug build with AddressSanitizer and UndefinedBehaviorSanitizer; then the proxy, snapshot, compile,
# store, DNS and fleet tests again under ThreadSanitizer (trellisd runs about nine kinds of thread).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
cmake --preset debug >/dev/null
cmake --build --preset debug
ctest --preset debug "$@"
cmake --preset tsan >/dev/null
cmake --build --preset tsan
ctest --preset tsan
