#!/usr/bin/env bash
# Instructions per proxied request under callgrind: deterministic where wall-clock numbers on this
# shared 2-vCPU VM are not (and perf has no hardware counters here). Profiles the 25/75 weighted
# listener of bench/run.sh's setup at c=1 (bench/latency_probe) and at c=64 (wrk), after a warm-up.
# With PROTOCOLS=1, the shapes of bench/protocols.sh instead, with h2load -n: h2c -c64 -m1, HTTPS with
# HTTP/1.1 -c64, HTTPS with h2 -c64 -m1 and -c8 -m8 (the handshakes included).
#
# usage: bench/profile.sh [trellis|nginx] [TRELLIS_BIN]    env: RUNDIR=/tmp/trellis-profile REQUESTS=10000 PROTOCOLS=0
# Leaves callgrind.LABEL.out in $RUNDIR: callgrind_annotate --threshold=100 FILE
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
who=${1:-trellis}
run=${RUNDIR:-/tmp/trellis-profile}
requests=${REQUESTS:-10000}
protocols=${PROTOCOLS:-0}
build=$repo/build/bench-release
export PATH=$PATH:/usr/sbin
for tool in valgrind callgrind_control wrk h2load openssl nginx; do command -v $tool >/dev/null || scripts/setup.sh --bench; done
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
    port=18112 h2c=18111 tls=18113
    mkdir -p "$run/data"
    valgrind --tool=callgrind --callgrind-out-file="$run/callgrind.%p" "$bin" bench/conf/trellis-records.json 1 \
      bench/conf/trellis-config.yaml "$run/data" 2>"$run/logs/valgrind.err" &
    ;;
  nginx)
    port=18092 h2c=18093 tls=18094 conf=proxy-nginx.conf
    if [[ $protocols == 1 ]]; then
      conf=proxy-nginx-protocols.conf
      mkdir -p "$run/tls"
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost -keyout "$run/tls/localhost.key" -out "$run/tls/localhost.pem" 2>/dev/null
    fi
    sed "s#RUNDIR#$run#g; s/daemon on;/daemon off; master_process off;/" "bench/conf/$conf" > "$run/nginx.conf"
    valgrind --tool=callgrind --callgrind-out-file="$run/callgrind.%p" nginx -c "$run/nginx.conf" -p "$run/" \
      -e "$run/logs/nginx.err" 2>"$run/logs/valgrind.err" &
    ;;
  *) echo "usage: bench/profile.sh [trellis|nginx] [TRELLIS_BIN]"; exit 2 ;;
esac
pid=$!
ready=(curl -s -o /dev/null "http://127.0.0.1:$port/")
[[ $protocols == 1 ]] && ready=(curl -s -o /dev/null --http2-prior-knowledge "http://127.0.0.1:$h2c/")
for _ in $(seq 50); do "${ready[@]}" && break; sleep 0.2; done

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
if [[ $protocols == 1 ]]; then
  h2() { h2load "$@" | awk '/^requests:/{print $8}'; }  # succeeded
  for shape in "h2c-c64m1 -c64 -m1 http://127.0.0.1:$h2c/" "https-h1-c64 --h1 -c64 https://localhost:$tls/" \
               "https-h2-c64m1 -c64 -m1 https://localhost:$tls/" "https-h2-c8m8 -c8 -m8 https://localhost:$tls/"; do
    set -- $shape
    label=$1
    shift
    h2load -n 2000 "$@" >/dev/null  # warm-up
    measure "$label" h2 -n "$requests" "$@"
  done
  exit 0
fi
"$build/bench/latency_probe" $port 60 2000 >/dev/null  # warm-up: pools, allocator, caches
measure c1 sh -c "'$build/bench/latency_probe' $port 300 $requests | sed 's/^n=\([0-9]*\).*/\1/'"
measure c64 sh -c "wrk -t1 -c64 -d10s http://127.0.0.1:$port/ | awk '/requests in/{print \$1}'"
