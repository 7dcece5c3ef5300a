#!/usr/bin/env bash
# HTTPS, HTTP/2 and TLS handshakes through Trellis, nginx and HAProxy on this machine (Layout A, as bench/run.sh):
# the load generator on CPU0; the nginx origin (:18081, HTTP/1.1) and the proxy under test on CPU1; one worker each.
#   trellis :18111 h2c (prior knowledge), :18113 HTTPS (a leaf for localhost from Trellis's own CA)
#   nginx   :18093 h2c, :18094 TLS        (bench/conf/proxy-nginx-protocols.conf)
#   haproxy :18103 h2c, :18104 TLS        (bench/conf/proxy-haproxy-protocols.cfg)
# Every TLS port offers TLS 1.2-1.3 with ALPN h2 and http/1.1 and an EC P-256 certificate. Modes, per repetition
# and target (interleaved, after a warm-up):
#   https-h1     wrk -c64 over TLS, keep-alive (no ALPN: HTTP/1.1)
#   handshakes   wrk -c64 over TLS with "Connection: close": one full handshake per request (req/s = handshakes/s)
#   https-h2     h2load -c64 -m1 and -c8 -m8 over TLS (ALPN h2)
#   h2c          h2load -c64 -m1 and -c8 -m8 (prior knowledge)
# Prints a Markdown table of medians with ratios to nginx and HAProxy. Not part of ctest.
#
# usage: bench/protocols.sh     env: SECS=10 REPS=3 WARMUP=2 RUNDIR=/tmp/trellis-bench-protocols
#   TARGETS="trellis nginx haproxy"  MODES="https-h1 handshakes https-h2 h2c"  TRELLIS_BIN=...
set -euo pipefail
source "$(dirname "$0")/lib.sh"
secs=${SECS:-10}
reps=${REPS:-3}
warmup=${WARMUP:-2}
run=${RUNDIR:-/tmp/trellis-bench-protocols}
targets_wanted=${TARGETS:-trellis nginx haproxy}
modes=${MODES:-https-h1 handshakes https-h2 h2c}
bench_require wrk h2load nginx haproxy openssl curl python3 taskset
bench_build
bench_start

mkdir -p "$run/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout "$run/tls/localhost.key" -out "$run/tls/localhost.pem" 2>/dev/null
cat "$run/tls/localhost.pem" "$run/tls/localhost.key" > "$run/tls/localhost.bundle.pem"

declare -A h2c tls procs
for t in $targets_wanted; do
  case $t in
    trellis)
      start_trellis trellis "$TRELLIS_BIN" 18111 18112
      h2c[trellis]=18111 tls[trellis]=18113 procs[trellis]=$trellis_pid
      ;;
    nginx)
      conf proxy-nginx-protocols.conf
      taskset -c 1 nginx -c "$run/proxy-nginx-protocols.conf" -p "$run/" -e "$run/logs/nginx-proxy.err"
      h2c[nginx]=18093 tls[nginx]=18094
      ;;
    haproxy)
      conf proxy-haproxy-protocols.cfg
      taskset -c 1 haproxy -f "$run/proxy-haproxy-protocols.cfg"
      h2c[haproxy]=18103 tls[haproxy]=18104
      ;;
    *) echo "bench: unknown target $t"; exit 2 ;;
  esac
done
sleep 1
[[ -f $run/nginx-proxy.pid ]] && procs[nginx]=$(daemon_pids "$run/nginx-proxy.pid")
[[ -f $run/haproxy.pid ]] && procs[haproxy]=$(cat "$run/haproxy.pid")

# Every target answers 200 over each protocol before anything is measured.
for t in $targets_wanted; do
  for check in "--http2-prior-knowledge http://127.0.0.1:${h2c[$t]}/" "--http1.1 -k https://localhost:${tls[$t]}/" \
               "--http2 -k https://localhost:${tls[$t]}/"; do
    # shellcheck disable=SC2086
    got=$(curl -s -o /dev/null -w '%{http_code} %{http_version}' $check)
    [[ $got == 200\ * ]] || { echo "bench: $t: curl $check answered '$got'"; exit 1; }
  done
done

# mode target → the command that loads it (on CPU0) for $1 seconds.
load() {
  local mode=$1 t=$2 s=$3
  case $mode in
    https-h1) taskset -c 0 wrk -t1 -c64 -d"${s}s" --latency "https://localhost:${tls[$t]}/" ;;
    handshakes) taskset -c 0 wrk -t1 -c64 -d"${s}s" --latency -H "Connection: close" "https://localhost:${tls[$t]}/" ;;
    https-h2-c64m1) taskset -c 0 h2load -t1 -c64 -m1 -D"$s" "https://localhost:${tls[$t]}/" ;;
    https-h2-c8m8) taskset -c 0 h2load -t1 -c8 -m8 -D"$s" "https://localhost:${tls[$t]}/" ;;
    h2c-c64m1) taskset -c 0 h2load -t1 -c64 -m1 -D"$s" "http://127.0.0.1:${h2c[$t]}/" ;;
    h2c-c8m8) taskset -c 0 h2load -t1 -c8 -m8 -D"$s" "http://127.0.0.1:${h2c[$t]}/" ;;
  esac
}
shapes=()
for m in $modes; do
  case $m in
    https-h2 | h2c) shapes+=("$m-c64m1" "$m-c8m8") ;;
    *) shapes+=("$m") ;;
  esac
done

for shape in "${shapes[@]}"; do for t in $targets_wanted; do load "$shape" "$t" "$warmup" >/dev/null 2>&1; done; done
results=$run/results.tsv
echo -e "target\trep\tmode\trps\tp50_us\tp99_us\tproxy_us_per_req\tfailed" > "$results"
for r in $(seq "$reps"); do
  for shape in "${shapes[@]}"; do
    for t in $targets_wanted; do
      raw=$run/raw/$t.$shape.r$r.txt
      k0=$(ticks "${procs[$t]}")
      load "$shape" "$t" "$secs" > "$raw" 2>&1
      k1=$(ticks "${procs[$t]}")
      if [[ $shape == https-h2* || $shape == h2c* ]]; then  # h2load
        n=$(awk '/^requests:/{print $8}' "$raw")
        rps=$(awk '/^finished in/{print $4}' "$raw")
        p50=- p99=-
        failed=$(awk '/^requests:/{print $10 + $12}' "$raw")
      else  # wrk
        n=$(awk '/requests in/{print $1}' "$raw")
        rps=$(awk '/Requests\/sec/{print $2}' "$raw")
        p50=$(to_us "$(awk '/^ +50%/{print $2}' "$raw")")
        p99=$(to_us "$(awk '/^ +99%/{print $2}' "$raw")")
        failed=$(awk '/Non-2xx/{s+=$NF} /Socket errors/{gsub(",", ""); s+=$4+$6+$8+$10} END{print s+0}' "$raw")
      fi
      echo -e "$t\t$r\t$shape\t$rps\t$p50\t$p99\t$(per_request_us $((k1 - k0)) "$n")\t$failed" | tee -a "$results"
    done
  done
done

python3 - "$results" "$run/results.md" "$secs" "$reps" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def med(t, m, col):
    v = [float(r[col]) for r in rows if r["target"] == t and r["mode"] == m and r[col] not in ("", "-")]
    return statistics.median(v) if v else None
def ratio(t, peer, m, col):
    a, b = med(t, m, col), med(peer, m, col)
    return f"{a / b:.2f}" if a is not None and b else "–"
def fmt(v, scale=1, unit=""):
    return "–" if v is None else f"{v / scale:.2f}{unit}" if scale != 1 else f"{v:.1f}{unit}"
targets = list(dict.fromkeys(r["target"] for r in rows))
out = [f"Medians of {sys.argv[4]} interleaved repetitions, {sys.argv[3]} s each. ×peer = Trellis ÷ that proxy "
       "(req/s: above 1 is better; CPU µs/req: below 1 is better). failed = requests that did not get a 2xx, summed.", "",
       "| mode | target | req/s | ×nginx | ×HAProxy | p50 | p99 | proxy CPU µs/req | CPU ×nginx | CPU ×HAProxy | failed |",
       "|---|---|---|---|---|---|---|---|---|---|---|"]
for m in dict.fromkeys(r["mode"] for r in rows):
    for t in targets:
        mine = t == "trellis"
        failed = sum(int(float(r["failed"] or 0)) for r in rows if r["target"] == t and r["mode"] == m)
        out.append(f"| {m} | {t} | {fmt(med(t, m, 'rps'), 1000, 'k')} "
                   f"| {ratio(t, 'nginx', m, 'rps') if mine else '–'} | {ratio(t, 'haproxy', m, 'rps') if mine else '–'} "
                   f"| {fmt(med(t, m, 'p50_us'), 1000, ' ms')} | {fmt(med(t, m, 'p99_us'), 1000, ' ms')} "
                   f"| {fmt(med(t, m, 'proxy_us_per_req'))} "
                   f"| {ratio(t, 'nginx', m, 'proxy_us_per_req') if mine else '–'} "
                   f"| {ratio(t, 'haproxy', m, 'proxy_us_per_req') if mine else '–'} | {failed} |")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY
echo "bench: raw rows in $results, table in $run/results.md"
