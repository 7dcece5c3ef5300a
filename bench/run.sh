#!/usr/bin/env bash
# Trellis vs nginx vs HAProxy on this machine, measured as in ../shared/spec/perf-anchors.md (Layout A):
# wrk pinned to CPU0; the nginx backend (A :18081, B :18082) and the proxy under test share CPU1; one
# worker each. Trellis serves :18111 (single upstream) and :18112 (25/75 weighted pair).
# Writes requests/s and p50/p99 (c=64 and c=1) to BENCHMARKS.md. Not part of ctest.
# Needs: wrk, nginx; haproxy optional (apt-get install nginx haproxy). Usage: bench/run.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
spec=${PERF_CONFIGS:-../shared/spec/perf-configs}
run=${RUNDIR:-/tmp/trellis-bench}
rm -rf "$run"; mkdir -p "$run/logs"
command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)"; exit 1; }
command -v nginx >/dev/null || { echo "bench: nginx is missing (apt-get install nginx)"; exit 1; }

cmake --preset release >/dev/null
cmake --build --preset release --target trellis_bench_proxy >/dev/null
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
            for f in "$run"/*.pid; do [[ -f $f ]] && kill "$(cat "$f")" 2>/dev/null || true; done; }
trap cleanup EXIT

sed "s#RUNDIR#$run#g" "$spec/backend-nginx.conf" > "$run/backend.conf"
taskset -c 1 nginx -c "$run/backend.conf" -p "$run/"
targets=()

# Trellis: two services on two ports, documents exactly as the API stores them.
cat > "$run/records.json" <<'JSON'
[
 {"kind":"service","id":"svc-00000000000000001","value":{"id":"svc-00000000000000001","arn":"arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-00000000000000001","dnsEntry":{"domainName":"127.0.0.1"}}},
 {"kind":"targetgroup","id":"tg-0000000000000000a","value":{"id":"tg-0000000000000000a","config":{"port":18081,"healthCheck":{"enabled":false}},"targets":[{"id":"127.0.0.1"}]}},
 {"kind":"targetgroup","id":"tg-0000000000000000b","value":{"id":"tg-0000000000000000b","config":{"port":18082,"healthCheck":{"enabled":false}},"targets":[{"id":"127.0.0.1"}]}},
 {"kind":"listener","id":"listener-1","value":{"id":"listener-1","serviceId":"svc-00000000000000001","port":18111,"protocol":"HTTP","defaultAction":{"forward":{"targetGroups":[{"targetGroupIdentifier":"tg-0000000000000000a","weight":100}]}}}},
 {"kind":"listener","id":"listener-2","value":{"id":"listener-2","serviceId":"svc-00000000000000001","port":18112,"protocol":"HTTP","defaultAction":{"forward":{"targetGroups":[{"targetGroupIdentifier":"tg-0000000000000000a","weight":25},{"targetGroupIdentifier":"tg-0000000000000000b","weight":75}]}}}}
]
JSON
taskset -c 1 build/release/bench/trellis_bench_proxy "$run/records.json" 1 2>"$run/logs/trellis.err" &
pids+=($!)
targets+=("trellis=http://127.0.0.1:18111/" "trellis-25/75=http://127.0.0.1:18112/")

sed "s#RUNDIR#$run#g" "$spec/proxy-nginx.conf" | grep -v '18094\|ssl_' | sed '/listen 127.0.0.1:18093/d' > "$run/nginx.conf"
taskset -c 1 nginx -c "$run/nginx.conf" -p "$run/"
targets+=("nginx=http://127.0.0.1:18091/" "nginx-25/75=http://127.0.0.1:18092/")
if command -v haproxy >/dev/null; then
  sed "s#RUNDIR#$run#g" "$spec/proxy-haproxy.cfg" > "$run/haproxy.cfg"
  taskset -c 1 haproxy -f "$run/haproxy.cfg"
  targets+=("haproxy=http://127.0.0.1:18101/" "haproxy-25/75=http://127.0.0.1:18102/")
else
  echo "bench: haproxy not installed, skipping it"
fi
sleep 1
for t in "${targets[@]}"; do taskset -c 0 wrk -t1 -c64 -d3s "${t#*=}" >/dev/null; done  # warm-up

declare -A rps p50 p99
for c in 64 1; do
  for t in "${targets[@]}"; do
    name=${t%%=*}; out="$run/logs/$name.c$c.txt"
    taskset -c 0 wrk -t1 -c$c -d${secs}s --latency "${t#*=}" > "$out"
    rps[$name.$c]=$(awk '/Requests\/sec/{print $2}' "$out")
    p50[$name.$c]=$(awk '/^ +50%/{print $2}' "$out")
    p99[$name.$c]=$(awk '/^ +99%/{print $2}' "$out")
    grep -qE 'Non-2xx|Socket errors' "$out" && echo "bench: $name c=$c had errors: $(grep -E 'Non-2xx|Socket errors' "$out")"
  done
done

{
  echo "# Benchmarks"
  echo
  echo "bench/run.sh, $(date -u +%Y-%m-%dT%H:%MZ), ${secs}s per run, wrk on CPU0, backend + proxy on CPU1 (perf-anchors Layout A)."
  echo "Ratio = requests/s relative to nginx on the same shape. wrk's c=1 p99 is unreliable (see perf-anchors)."
  echo
  echo "| target | c | req/s | ratio to nginx | p50 | p99 |"
  echo "|---|---|---|---|---|---|"
  for c in 64 1; do
    for t in "${targets[@]}"; do
      name=${t%%=*}; base=nginx; [[ $name == *25/75 ]] && base=nginx-25/75
      ratio=$(awk -v a="${rps[$name.$c]}" -v b="${rps[$base.$c]}" 'BEGIN{printf "%.2f", a/b}')
      echo "| $name | $c | ${rps[$name.$c]} | $ratio | ${p50[$name.$c]} | ${p99[$name.$c]} |"
    done
  done
} > BENCHMARKS.md
cat BENCHMARKS.md
