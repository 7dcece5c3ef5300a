#!/usr/bin/env bash
# Instructions per proxied request under callgrind: deterministic where wall-clock numbers on this
# shared 2-vCPU VM are not (and perf has no hardware counters here). Profiles the 25/75 weighted
# listener of bench/run.sh's setup at c=1 (bench/latency_probe) and at c=64 (wrk), after a warm-up.
#
# usage: bench/profile.sh [trellis|nginx] [TRELLIS_BIN]    env: RUNDIR=/tmp/trellis-profile REQUESTS=10000
# Leaves callgrind.c1.out / callgrind.c64.out in $RUNDIR: callgrind_annotate --threshold=100 FILE
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
who=${1:-trellis}
run=${RUNDIR:-/tmp/trellis-profile}
requests=${REQUESTS:-10000}
build=$repo/build/bench-release
export PATH=$PATH:/usr/sbin
for tool in valgrind callgrind_control wrk nginx; do command -v $tool >/dev/null || scripts/setup.sh --bench; done
cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" --target trellis_bench_proxy latency_probe >/dev/null
bin=${2:-$build/bench/trellis_bench_proxy}

rm -rf "$run"
mkdir -p "$run/logs"
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
  [[ -f $run/backend.pid ]] && kill "$(cat "$run/backend.pid")" 2>/dev/null || true
}
trap cleanup EXIT
sed "s#RUNDIR#$run#g" bench/conf/backend-nginx.conf > "$run/backend.conf"
nginx -c "$run/backend.conf" -p "$run/" -e "$run/logs/backend.err"

case $who in
  trellis)
    port=18112
    valgrind --tool=callgrind --callgrind-out-file="$run/callgrind.%p" "$bin" bench/conf/trellis-records.json 1 \
      bench/conf/trellis-config.yaml 2>"$run/logs/valgrind.err" &
    ;;
  nginx)
    port=18092
    sed "s#RUNDIR#$run#g; s/daemon on;/daemon off; master_process off;/" bench/conf/proxy-nginx.conf > "$run/nginx.conf"
    valgrind --tool=callgrind --callgrind-out-file="$run/callgrind.%p" nginx -c "$run/nginx.conf" -p "$run/" \
      -e "$run/logs/nginx.err" 2>"$run/logs/valgrind.err" &
    ;;
  *) echo "usage: bench/profile.sh [trellis|nginx] [TRELLIS_BIN]"; exit 2 ;;
esac
pid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done

total() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",", "", $1); print $1}'; }
measure() {  # label, then the load command; prints Ir per request
  local label=$1 n
  shift
  callgrind_control -z "$pid" >/dev/null
  n=$("$@")
  callgrind_control -d "$label" "$pid" >/dev/null
  local file
  file=$(ls -t "$run"/callgrind.*.[0-9]* | head -1)  # callgrind.PID.N, N counting dumps
  mv "$file" "$run/callgrind.$label.out"
  echo "$who $label: $n requests, $(( $(total "$run/callgrind.$label.out") / n )) instructions per request"
}
"$build/bench/latency_probe" $port 60 2000 >/dev/null  # warm-up: pools, allocator, caches
measure c1 sh -c "'$build/bench/latency_probe' $port 300 $requests | sed 's/^n=\([0-9]*\).*/\1/'"
measure c64 sh -c "wrk -t1 -c64 -d10s http://127.0.0.1:$port/ | awk '/requests in/{print \$1}'"
