#!/usr/bin/env bash
# Trellis vs nginx vs HAProxy on this machine, measured like ../shared/spec/perf-anchors.md (Layout A):
# wrk and the latency probe pinned to CPU0; the nginx origin (A :18081, B :18082) and the proxy under
# test share CPU1; one worker/thread each. Every proxy serves a single upstream and a 25/75 weighted
# pair of A and B:
#   trellis :18111 / :18112   (bench/conf/trellis-records.json + trellis-config.yaml, 1 worker)
#   nginx   :18091 / :18092   (bench/conf/proxy-nginx.conf)
#   haproxy :18101 / :18102   (bench/conf/proxy-haproxy.cfg)
# Per repetition and target (interleaved, after a warm-up): wrk -c64 (req/s, p50, p99, proxy CPU µs per
# request from /proc), wrk -c1 (req/s), and bench/latency_probe (c=1 raw p50/p90/p99/p99.9).
# Prints a Markdown table of medians and writes it, with the raw rows, to $RUNDIR. Not part of ctest.
#
# usage: bench/run.sh            env: SECS=10 REPS=3 WARMUP=3 RUNDIR=/tmp/trellis-bench
#   TARGETS="trellis nginx haproxy"  which proxies to measure
#   BASELINE=/path/to/trellis_bench_proxy  also measure this build as "trellis-before" (:18121/:18122)
#   TRELLIS_BIN=/path/to/trellis_bench_proxy  measure this build instead of building one
#   C1=0  skip the c=1 measurements
set -euo pipefail
source "$(dirname "$0")/lib.sh"
secs=${SECS:-10}
reps=${REPS:-3}
warmup=${WARMUP:-3}
run=${RUNDIR:-/tmp/trellis-bench}
targets_wanted=${TARGETS:-trellis nginx haproxy}
c1=${C1:-1}  # 0: c=64 only (quicker, for paired CPU comparisons)
bench_require wrk nginx haproxy curl python3 taskset
bench_build
bench_start

# name=port (single) and name-25/75=port (weighted); procs[name] = the PIDs whose CPU time is the proxy's.
targets=()
declare -A procs
trellis() {  # label binary portSingle portWeighted
  start_trellis "$@"
  procs[$1]=$trellis_pid
  procs[$1-25/75]=$trellis_pid
  targets+=("$1=$3" "$1-25/75=$4")
}
for t in $targets_wanted; do
  case $t in
    trellis)
      trellis trellis "$TRELLIS_BIN" 18111 18112
      [[ -n ${BASELINE:-} ]] && trellis trellis-before "$BASELINE" 18121 18122
      ;;
    nginx)
      conf proxy-nginx.conf
      taskset -c 1 nginx -c "$run/proxy-nginx.conf" -p "$run/" -e "$run/logs/nginx-proxy.err"
      targets+=("nginx=18091" "nginx-25/75=18092")
      ;;
    haproxy)
      conf proxy-haproxy.cfg
      taskset -c 1 haproxy -f "$run/proxy-haproxy.cfg"
      targets+=("haproxy=18101" "haproxy-25/75=18102")
      ;;
    *) echo "bench: unknown target $t"; exit 2 ;;
  esac
done
sleep 1
[[ -f $run/nginx-proxy.pid ]] && procs[nginx]=$(daemon_pids "$run/nginx-proxy.pid")
[[ -f $run/nginx-proxy.pid ]] && procs[nginx-25/75]=${procs[nginx]}
[[ -f $run/haproxy.pid ]] && procs[haproxy]=$(cat "$run/haproxy.pid") && procs[haproxy-25/75]=$(cat "$run/haproxy.pid")
backend=$(daemon_pids "$run/backend.pid")

# Every target answers, and the weighted ones split 25/75 (X-B says which origin answered).
for t in "${targets[@]}"; do
  name=${t%%=*} port=${t#*=}
  if [[ $name == *25/75 ]]; then
    split=$(for _ in $(seq 100); do curl -s -o /dev/null -D - "http://127.0.0.1:$port/" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-b"{print $2}'; done | sort | uniq -c | tr '\n' ' ')
    echo "bench: $name split over 100 requests: $split"
  else
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")
    [[ $code == 200 ]] || { echo "bench: $name on :$port answered $code"; exit 1; }
  fi
done

# CPU1's user+system and total ticks: what neither the proxy nor the origin used there is other load
# (noise). irq/softirq ticks are left out: without IRQ time accounting they are our own loopback traffic.
cpu1() { awk '/^cpu1 /{print $2+$3+$4, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }

for t in "${targets[@]}"; do taskset -c 0 wrk -t1 -c64 -d${warmup}s "http://127.0.0.1:${t#*=}/" >/dev/null; done
results=$run/results.tsv
echo -e "target\trep\tmode\trps\tp50_us\tp90_us\tp99_us\tp999_us\tproxy_us_per_req\tbackend_us_per_req\tother_cpu1_pct\terrors" > "$results"
for r in $(seq "$reps"); do
  for t in "${targets[@]}"; do
    name=${t%%=*} port=${t#*=} url="http://127.0.0.1:${t#*=}/"
    for c in 64 $([[ $c1 == 1 ]] && echo 1); do
      raw=$run/raw/${name//\//_}.c$c.r$r.txt
      k0=$(ticks "${procs[$name]}") b0=$(ticks "$backend") s0=$(cpu1)
      taskset -c 0 wrk -t1 -c$c -d${secs}s --latency "$url" > "$raw" 2>&1
      k1=$(ticks "${procs[$name]}") b1=$(ticks "$backend") s1=$(cpu1)
      n=$(awk '/requests in/{print $1}' "$raw")
      rps=$(awk '/Requests\/sec/{print $2}' "$raw")
      p50=$(to_us "$(awk '/^ +50%/{print $2}' "$raw")")
      p90=$(to_us "$(awk '/^ +90%/{print $2}' "$raw")")
      p99=$(to_us "$(awk '/^ +99%/{print $2}' "$raw")")
      cpu=$(per_request_us $((k1 - k0)) "$n")
      bcpu=$(per_request_us $((b1 - b0)) "$n")
      other=$(awk -v a="$s0" -v b="$s1" -v own=$((k1 - k0 + b1 - b0)) 'BEGIN{split(a, x, " "); split(b, y, " ");
        o = (y[1] - x[1] - own) * 100 / (y[2] - x[2]); printf "%.0f", o < 0 ? 0 : o}')
      err=$(grep -E 'Non-2xx|Socket errors' "$raw" | tr -s ' \n' ' ' || true)
      echo -e "$name\t$r\twrk-c$c\t$rps\t$p50\t$p90\t$p99\t-\t$cpu\t$bcpu\t$other\t$err" | tee -a "$results"
    done
    [[ $c1 == 1 ]] || continue
    line=$(taskset -c 0 "$probe" "$port" "$secs")
    v() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<" $line"; }
    echo -e "$name\t$r\tprobe-c1\t$(v rps)\t$(v p50)\t$(v p90)\t$(v p99)\t$(v p999)\t-\t-\t-\t" | tee -a "$results"
  done
done

python3 - "$results" "$run/results.md" "$secs" "$reps" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
secs, reps = sys.argv[3], sys.argv[4]
def vals(name, mode, col):
    return [float(r[col]) for r in rows if r["target"] == name and r["mode"] == mode and r[col] not in ("", "-")]
def med(name, mode, col):
    v = vals(name, mode, col)
    return statistics.median(v) if v else float("nan")
def spread(name, mode, col):
    v = vals(name, mode, col)
    return (max(v) - min(v)) / statistics.median(v) if len(v) > 1 else 0.0
names = list(dict.fromkeys(r["target"] for r in rows))
def ratio(name, peer, mode, col):
    base = peer + ("-25/75" if name.endswith("25/75") else "")
    return f"{med(name, mode, col) / med(base, mode, col):.2f}" if base in names else "–"
def paired(name, peer, mode, col):
    # Median of per-repetition ratios: each pair ran minutes apart at most, so shared noise cancels better.
    base = peer + ("-25/75" if name.endswith("25/75") else "")
    if base not in names: return "–"
    mine = {r["rep"]: float(r[col]) for r in rows if r["target"] == name and r["mode"] == mode and r[col] not in ("", "-")}
    theirs = {r["rep"]: float(r[col]) for r in rows if r["target"] == base and r["mode"] == mode and r[col] not in ("", "-")}
    v = sorted(mine[k] / theirs[k] for k in mine if k in theirs and theirs[k])
    return f"{statistics.median(v):.2f} ({v[0]:.2f}–{v[-1]:.2f})" if v else "–"
out = [f"Medians of {reps} interleaved repetitions, {secs} s each; spread = (max-min)/median. "
       "×peer = Trellis ÷ that proxy on the same shape (single or 25/75): above 1 is better for req/s, worse for CPU and latency. "
       "Server-core capacity = 1e6 / (proxy + origin CPU µs per request): the req/s CPU1 would carry with nothing else on it.",
       "",
       "| target | c=64 req/s (spread) | ×nginx | ×HAProxy | wrk p50 | wrk p99 | proxy CPU µs/req | ×nginx | ×HAProxy "
       "| origin CPU µs/req | server-core capacity | other load on CPU1 | c=1 wrk req/s |",
       "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
for n in names:
    m = lambda col, mode="wrk-c64": med(n, mode, col)
    out.append(f"| {n} | {m('rps')/1000:.1f}k ({spread(n,'wrk-c64','rps')*100:.0f}%) | {ratio(n,'nginx','wrk-c64','rps')} "
               f"| {ratio(n,'haproxy','wrk-c64','rps')} | {m('p50_us')/1000:.2f} ms | {m('p99_us')/1000:.2f} ms "
               f"| {m('proxy_us_per_req'):.1f} | {ratio(n,'nginx','wrk-c64','proxy_us_per_req')} "
               f"| {ratio(n,'haproxy','wrk-c64','proxy_us_per_req')} | {m('backend_us_per_req'):.1f} "
               f"| {1000 / (m('proxy_us_per_req') + m('backend_us_per_req')):.1f}k/s "
               f"| {m('other_cpu1_pct'):.0f}% | " + (f"{m('rps','wrk-c1')/1000:.1f}k |" if vals(n, 'wrk-c1', 'rps') else "– |"))
ps = [n for n in names if n.startswith("trellis")]
out += ["", "Paired ratios at c=64, median (min–max) over repetitions of Trellis ÷ peer in the same repetition:", "",
        "| target | req/s ×nginx | req/s ×HAProxy | CPU µs/req ×nginx | CPU µs/req ×HAProxy |", "|---|---|---|---|---|"]
for n in ps:
    out.append(f"| {n} | {paired(n,'nginx','wrk-c64','rps')} | {paired(n,'haproxy','wrk-c64','rps')} "
               f"| {paired(n,'nginx','wrk-c64','proxy_us_per_req')} | {paired(n,'haproxy','wrk-c64','proxy_us_per_req')} |")
if not any(r["mode"] == "probe-c1" for r in rows):
    open(sys.argv[2], "w").write("\n".join(out) + "\n")
    print("\n".join(out))
    sys.exit(0)
out += ["", "c=1, bench/latency_probe (serial keep-alive requests, raw percentiles, µs):", "",
        "| target | req/s | p50 | p90 | p99 | p99.9 | p50 ×nginx | p50 ×HAProxy | p99 ×nginx | p99 ×HAProxy |",
        "|---|---|---|---|---|---|---|---|---|---|"]
for n in names:
    m = lambda col: med(n, "probe-c1", col)
    out.append(f"| {n} | {m('rps')/1000:.1f}k | {m('p50_us'):.1f} | {m('p90_us'):.1f} | {m('p99_us'):.1f} | {m('p999_us'):.0f} "
               f"| {ratio(n,'nginx','probe-c1','p50_us')} | {ratio(n,'haproxy','probe-c1','p50_us')} "
               f"| {ratio(n,'nginx','probe-c1','p99_us')} | {ratio(n,'haproxy','probe-c1','p99_us')} |")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY
echo "bench: raw rows in $results, table in $run/results.md"
