#!/usr/bin/env bash
# Issue 5, section 4, DNS half: two "VPCs" as network namespaces, each joined to the root namespace by
# a veth pair, the DNS service directory in the root namespace. From VPC A, dig and the system resolver
# (a resolv.conf pointing at the directory) resolve the service and curl reaches an HTTP server by that
# name; from VPC B, not associated, the name is NXDOMAIN, until B is associated (live). Everything made
# here is removed on exit, failure included. Skips (exit 77) where namespaces cannot be created.
#
#   netns.test.sh PATH/TO/dns_fixture_server
set -euo pipefail

server_bin=$1
id=$$
r=$((200 + id % 50))  # 10.$r.1.0/24 is VPC A, 10.$r.2.0/24 VPC B
nsA=trellis-dns-a-$id
nsB=trellis-dns-b-$id
work=$(mktemp -d)
pids=()

cleanup() {
  set +e
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  ip link del "td1-$id" 2>/dev/null  # now, rather than when the kernel gets round to the namespaces
  ip link del "td2-$id" 2>/dev/null
  ip netns del "$nsA" 2>/dev/null
  ip netns del "$nsB" 2>/dev/null
  rm -rf "/etc/netns/$nsA" "/etc/netns/$nsB" "$work"
}
trap cleanup EXIT

if ! ip netns add "$nsA" 2>/dev/null; then
  echo "SKIP: cannot create network namespaces here (needs root / CAP_SYS_ADMIN)"
  exit 77
fi
ip netns add "$nsB"

failures=0
check() {  # check DESCRIPTION EXPECTED ACTUAL
  if [[ "$2" == "$3" ]]; then
    echo "ok   $1"
  else
    echo "FAIL $1: expected [$2], got [$3]"
    failures=$((failures + 1))
  fi
}

# VPC i: root side 10.$r.i.1, namespace side 10.$r.i.2, default route through the root namespace.
connect() {  # connect NAMESPACE INDEX
  local ns=$1 i=$2
  local host=td$i-$id peer=tp$i-$id
  ip link add "$host" type veth peer name "$peer"
  ip link set "$peer" netns "$ns"
  ip addr add "10.$r.$i.1/24" dev "$host"
  ip link set "$host" up
  ip netns exec "$ns" ip addr add "10.$r.$i.2/24" dev "$peer"
  ip netns exec "$ns" ip link set "$peer" up
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" ip route add default via "10.$r.$i.1"
}
connect "$nsA" 1
connect "$nsB" 2

dns=10.$r.1.1
"$server_bin" "$dns:53" "10.$r.1.0/24" "10.$r.2.0/24" "$dns" >"$work/server.out" 2>"$work/server.err" &
pids+=($!)
for _ in $(seq 100); do grep -q '^ready' "$work/server.out" && break; sleep 0.1; done
if ! grep -q '^ready' "$work/server.out"; then
  echo "FAIL: the DNS server did not start"; cat "$work/server.err"; exit 1
fi
name=$(awk '/^ready/ {print $3}' "$work/server.out")

# A stand-in for the data plane, on the answer address: curl must find it by name.
mkdir "$work/www" && echo "hello from billing" >"$work/www/index.txt"
python3 -m http.server 18080 --bind "$dns" --directory "$work/www" >/dev/null 2>&1 &
pids+=($!)

for ns in "$nsA" "$nsB"; do
  mkdir -p "/etc/netns/$ns"
  echo "nameserver $dns" >"/etc/netns/$ns/resolv.conf"  # ip netns exec mounts it over /etc/resolv.conf
done

digIn() { ip netns exec "$1" dig +tries=1 +time=3 "@$dns" "${@:2}"; }
status() { digIn "$@" | sed -n 's/.*status: \([A-Z]*\),.*/\1/p'; }

check "dig from VPC A resolves the service" "$dns" "$(digIn "$nsA" "$name" A +short)"
check "dig over TCP from VPC A" "$dns" "$(digIn "$nsA" "$name" A +short +tcp)"
check "dig from VPC A follows the custom name" "$name. $dns" "$(digIn "$nsA" billing.example.com A +short | xargs)"
check "dig from VPC B gets NXDOMAIN" "NXDOMAIN" "$(status "$nsB" "$name" A)"
check "dig from VPC B, custom name: NXDOMAIN" "NXDOMAIN" "$(status "$nsB" billing.example.com A)"
check "system resolver in VPC A" "$dns" "$(ip netns exec "$nsA" getent ahostsv4 "$name" | awk 'NR==1 {print $1}')"
check "system resolver in VPC B fails" "2" "$(ip netns exec "$nsB" getent ahostsv4 "$name" >/dev/null; echo $?)"

for _ in $(seq 50); do curl -s -o /dev/null "http://$dns:18080/" && break; sleep 0.1; done
check "curl from VPC A by name" "hello from billing" \
  "$(ip netns exec "$nsA" curl -s --max-time 5 "http://$name:18080/index.txt")"
check "curl from VPC B cannot resolve the name" "6" \
  "$(ip netns exec "$nsB" curl -s --max-time 5 -o /dev/null "http://$name:18080/index.txt"; echo $?)"

kill -USR1 "${pids[0]}"
for _ in $(seq 50); do grep -q '^associated B' "$work/server.out" && break; sleep 0.1; done
check "after associating VPC B, it resolves" "$dns" "$(digIn "$nsB" "$name" A +short)"

if ((failures > 0)); then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
