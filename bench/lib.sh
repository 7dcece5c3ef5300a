# Shared by bench/run.sh and bench/protocols.sh (sourced): tools, the release build, the origin, cleanup.
# Layout A of ../shared/spec/perf-anchors.md: load generators on CPU0, the origin and the proxy under test on CPU1.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$repo/build/bench-release
export PATH=$PATH:/usr/sbin

bench_require() {  # tools...: installs the bench packages (scripts/setup.sh --bench) when one is missing
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing; running scripts/setup.sh --bench"; "$repo/scripts/setup.sh" --bench; return; }
  done
  (($(nproc) >= 2)) || { echo "bench: needs 2 CPUs (load generator on CPU0, servers on CPU1)"; exit 1; }
}

bench_configure() {  # the release build in $build
  cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang \
    -DCMAKE_CXX_COMPILER=clang++ -DBUILD_TESTING=OFF >/dev/null
}

# For the control-plane benchmarks (bench/api_scale.sh, bench/fleet.sh): Node.js with the SDK
# (test/integration/node_modules) and a release trellisd in $build; prints what is measured.
bench_trellisd() {
  "$repo/scripts/setup.sh" --test >/dev/null
  bench_configure
  cmake --build "$build" --target trellisd >/dev/null
  echo "commit $(git -C "$repo" rev-parse --short HEAD), $(nproc) CPUs, $(date -u +%F)"
}

bench_build() {  # sets TRELLIS_BIN (unless given) and probe
  if [[ -z ${TRELLIS_BIN:-} ]]; then
    bench_configure
    cmake --build "$build" --target trellis_bench_proxy latency_probe >/dev/null
    TRELLIS_BIN=$build/bench/trellis_bench_proxy
  fi
  probe=$build/bench/latency_probe
  [[ -x $probe ]] || cmake --build "$build" --target latency_probe >/dev/null
}

# A fresh $run with the origin started on CPU1; everything started later is stopped on exit.
pids=()
bench_start() {
  rm -rf "$run"
  mkdir -p "$run/logs" "$run/raw"
  trap bench_cleanup EXIT
  conf backend-nginx.conf
  taskset -c 1 nginx -c "$run/backend-nginx.conf" -p "$run/" -e "$run/logs/backend.err"
}
bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "$run"/backend.pid "$run"/nginx-proxy.pid "$run"/haproxy.pid; do
    [[ -f $f ]] && kill "$(cat "$f")" 2>/dev/null || true
  done
}
conf() { sed "s#RUNDIR#$run#g" "$repo/bench/conf/$1" > "$run/$1"; }

# Trellis's data plane alone on CPU1 with 1 worker: label portSingle portWeighted (bench/conf/trellis-records.json).
# setsid: its own session, hence its own scheduler autogroup, as nginx and haproxy get when they daemonize.
# Left in ours, it shared CPU1 with whatever else ran there (20-30% fewer req/s under load).
start_trellis() {  # label binary portSingle portWeighted; sets trellis_pid
  sed "s/18111/$3/; s/18112/$4/" "$repo/bench/conf/trellis-records.json" > "$run/$1-records.json"
  mkdir -p "$run/$1-data"
  setsid taskset -c 1 "$2" "$run/$1-records.json" 1 "$repo/bench/conf/trellis-config.yaml" "$run/$1-data" \
    2>"$run/logs/$1.err" &
  trellis_pid=$!
  pids+=("$trellis_pid")
}
# The PIDs of a daemonized nginx (master and workers) or haproxy, from its pid file.
daemon_pids() { local p; p=$(cat "$1"); echo "$p $(pgrep -P "$p" | tr '\n' ' ')"; }

ticks() { local sum=0; for p in $1; do sum=$((sum + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $sum; }
hz=$(getconf CLK_TCK)
per_request_us() { awk -v d="$1" -v n="$2" -v hz="$hz" 'BEGIN{printf "%.1f", n ? d*1e6/hz/n : 0}'; }
to_us() { awk -v v="$1" 'BEGIN{ if (v ~ /us$/) print v+0; else if (v ~ /ms$/) print v*1000; else if (v ~ /s$/) print v*1e6; else print v }'; }
