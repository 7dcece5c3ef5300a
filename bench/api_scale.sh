#!/usr/bin/env bash
# The control plane at 100, 1,000 and 10,000 services (bench/api_scale.mjs): builds a release trellisd
# in build/bench-release and runs the measurement with the real AWS SDK for JavaScript. Not part of ctest.
#
# usage: bench/api_scale.sh     env: SIZES=100,1000,10000 TARGETS=10 CONCURRENCY=8 SAMPLE=400 STORE=etcd://…
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_trellisd
TRELLISD=$build/src/exe/trellisd node "$repo/bench/api_scale.mjs"
