#!/usr/bin/env bash
# A fleet on one machine (bench/fleet.mjs): config propagation from the API to 3 and 50 data-plane hosts, an idle
# host's cost, a host's start from its replica. Builds a release trellisd in build/bench-release. Not part of ctest.
#
# usage: bench/fleet.sh     env: PROXIES=3,50 COMMITS=200 SERVICES=1000
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_trellisd
TRELLISD=$build/src/exe/trellisd node "$repo/bench/fleet.mjs"
