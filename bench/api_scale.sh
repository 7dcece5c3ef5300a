#!/usr/bin/env bash
# The control plane at 100, 1,000 and 10,000 services (bench/api_scale.mjs): builds a release trellisd
# in build/bench-release and runs the measurement with the real AWS SDK for JavaScript. Not part of ctest.
#
# usage: bench/api_scale.sh     env: SIZES=100,1000,10000 TARGETS=10 CONCURRENCY=8 SAMPLE=400 STORE=etcd://…
set -euo pipefail
source "$(dirname "$0")/lib.sh"
"$repo/scripts/setup.sh" --test >/dev/null  # Node.js and the SDK (test/integration/node_modules)
cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" --target trellisd >/dev/null
echo "commit $(git -C "$repo" rev-parse --short HEAD), $(nproc) CPUs, $(date -u +%F)"
TRELLISD=$build/src/exe/trellisd node "$repo/bench/api_scale.mjs"
