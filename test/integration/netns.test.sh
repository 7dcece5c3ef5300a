#!/usr/bin/env bash
# End to end with real network namespaces: two "VPCs" (namespaces joined to the root namespace
# by veth pairs) and trellisd in the root namespace serving the API, the data plane and the DNS
# directory, configured with the AWS CLI. From VPC A the service resolves and answers by name; a part of
# A's subnet left out of the association's security group is dropped; from VPC B (not associated) the
# name is NXDOMAIN and a direct request is 404, until B is associated (live). Everything made here is
# removed on exit, failure included. Skips (exit 77) where namespaces cannot be created.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
trellisd=${TRELLISD:-$here/../../build/debug/src/exe/trellisd}
id=$$
r=$((200 + id % 50))  # 10.$r.1.0/24 is VPC A, 10.$r.2.0/24 VPC B: addresses of our own test hosts only
nsA=trellis-vpc-a-$id
nsB=trellis-vpc-b-$id
work=$(mktemp -d)
pids=()
cleanup() {
  set +e
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  ip link del "tv1-$id" 2>/dev/null
  ip link del "tv2-$id" 2>/dev/null
  ip netns del "$nsA" 2>/dev/null
  ip netns del "$nsB" 2>/dev/null
  rm -rf "/etc/netns/$nsA" "/etc/netns/$nsB" "$work"
}
trap cleanup EXIT

if ! ip netns add "$nsA" 2>/dev/null; then
  echo "SKIP: cannot create network namespaces here (needs root / CAP_SYS_ADMIN)"
  exit 77
fi
if ! python3 -c 'import boto3; boto3.session.Session().get_available_services().index("vpc-lattice")' 2>/dev/null; then
  echo "SKIP: no AWS CLI with vpc-lattice on this machine"
  exit 77
fi
ip netns add "$nsB"

failures=0
check() {  # check DESCRIPTION EXPECTED ACTUAL
  if [[ "$2" == "$3" ]]; then echo "ok   $1"; else echo "FAIL $1: expected [$2], got [$3]"; failures=$((failures + 1)); fi
}
connect() {  # connect NAMESPACE INDEX: root side 10.$r.i.1, namespace side 10.$r.i.2
  local ns=$1 i=$2
  local host=tv$i-$id peer=tw$i-$id
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
ip netns exec "$nsA" ip addr add "10.$r.1.200/24" dev "tw1-$id"  # a client outside the security group

edge=10.$r.1.1  # trellisd's data plane and DNS, in the root namespace
cat >"$work/trellis.yaml" <<YAML
region: us-east-1
accountId: "111122223333"
identities:
  - {arn: "arn:aws:iam::111122223333:role/admin", accessKeyId: AKIAEXAMPLENETNS0001, secretAccessKey: netns-test-secret}
vpcs:
  - {id: vpc-0a0a0a0a0a0a0a0a1, cidrs: ["10.$r.1.0/24"]}
  - {id: vpc-0b0b0b0b0b0b0b0b2, cidrs: ["10.$r.2.0/24"]}
securityGroups:
  - id: sg-0a0a0a0a0a0a0a0a1
    vpcId: vpc-0a0a0a0a0a0a0a0a1
    ingress: [{cidr: "10.$r.1.0/25", fromPort: 1, toPort: 65535}]
YAML
"$trellisd" --config "$work/trellis.yaml" --data-dir "$work/data" --api-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --console-listen 127.0.0.1:0 \
  --proxy-bind "$edge" --dns-listen "$edge:53" >"$work/out" 2>"$work/err" &
pids+=($!)
for _ in $(seq 100); do grep -q "^DNS service directory" "$work/out" 2>/dev/null && break; sleep 0.1; done
endpoint=$(grep -o 'http://[^ ]*' "$work/out" | head -1)
[[ -n "$endpoint" ]] || { echo "FAIL: trellisd did not start"; cat "$work/err"; exit 1; }

export AWS_ACCESS_KEY_ID=AKIAEXAMPLENETNS0001 AWS_SECRET_ACCESS_KEY=netns-test-secret AWS_DEFAULT_REGION=us-east-1 HOME=$work
lattice() { aws --endpoint-url "$endpoint" --output json vpc-lattice "$@"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

mkdir "$work/www" && echo "hello from billing" >"$work/www/index.txt"
python3 -m http.server 18181 --bind 127.0.0.1 --directory "$work/www" >/dev/null 2>&1 &
pids+=($!)

sn=$(lattice create-service-network --name netns-net | field '["id"]')
svcjson=$(lattice create-service --name billing --custom-domain-name billing.example.com)
svc=$(echo "$svcjson" | field '["id"]')
name=$(echo "$svcjson" | field '["dnsEntry"]["domainName"]')
tg=$(lattice create-target-group --name billing-tg --type IP \
  --config '{"port": 18181, "protocol": "HTTP", "vpcIdentifier": "vpc-0a0a0a0a0a0a0a0a1"}' | field '["id"]')
lattice register-targets --target-group-identifier "$tg" --targets id=127.0.0.1,port=18181 >/dev/null
lattice create-listener --service-identifier "$svc" --name http --protocol HTTP --port 8080 \
  --default-action "{\"forward\": {\"targetGroups\": [{\"targetGroupIdentifier\": \"$tg\"}]}}" >/dev/null
lattice create-service-network-service-association --service-identifier "$svc" --service-network-identifier "$sn" >/dev/null
lattice create-service-network-vpc-association --service-network-identifier "$sn" \
  --vpc-identifier vpc-0a0a0a0a0a0a0a0a1 --security-group-ids sg-0a0a0a0a0a0a0a0a1 >/dev/null

for ns in "$nsA" "$nsB"; do
  mkdir -p "/etc/netns/$ns"
  echo "nameserver $edge" >"/etc/netns/$ns/resolv.conf"  # ip netns exec mounts it over /etc/resolv.conf
done
digIn() { ip netns exec "$1" dig +tries=1 +time=3 "@$edge" "${@:2}"; }
status() { digIn "$@" | sed -n 's/.*status: \([A-Z]*\),.*/\1/p'; }
curlIn() { ip netns exec "$1" curl -s --max-time 5 "${@:2}"; }

for _ in $(seq 50); do [[ "$(curlIn "$nsA" "http://$name:8080/index.txt")" == "hello from billing" ]] && break; sleep 0.1; done
check "VPC A: dig resolves the service to the data plane" "$edge" "$(digIn "$nsA" "$name" A +short)"
check "VPC A: dig over TCP" "$edge" "$(digIn "$nsA" "$name" A +short +tcp)"
check "VPC A: the custom domain name is a CNAME to the service" "$name. $edge" \
  "$(digIn "$nsA" billing.example.com A +short | xargs)"
check "VPC A: names outside the directory are REFUSED without upstreams" "REFUSED" "$(status "$nsA" example.org A)"
check "VPC A: the system resolver finds it" "$edge" "$(ip netns exec "$nsA" getent ahostsv4 "$name" | awk 'NR==1 {print $1}')"
check "VPC A: curl by name reaches the target" "hello from billing" "$(curlIn "$nsA" "http://$name:8080/index.txt")"
check "VPC A outside the security group: dropped" "000" \
  "$(curlIn "$nsA" --interface "10.$r.1.200" -o /dev/null -w '%{http_code}' -H "Host: $name" "http://$edge:8080/index.txt")"
check "VPC B: the name is NXDOMAIN" "NXDOMAIN" "$(status "$nsB" "$name" A)"
check "VPC B: the custom domain name is NXDOMAIN" "NXDOMAIN" "$(status "$nsB" billing.example.com A)"
check "VPC B: the system resolver fails" "2" "$(ip netns exec "$nsB" getent ahostsv4 "$name" >/dev/null; echo $?)"
check "VPC B: a direct request is 404" "404" \
  "$(curlIn "$nsB" -o /dev/null -w '%{http_code}' -H "Host: $name" "http://$edge:8080/index.txt")"

lattice create-service-network-vpc-association --service-network-identifier "$sn" \
  --vpc-identifier vpc-0b0b0b0b0b0b0b0b2 >/dev/null
for _ in $(seq 50); do [[ "$(digIn "$nsB" "$name" A +short)" == "$edge" ]] && break; sleep 0.1; done
check "VPC B associated: the name resolves" "$edge" "$(digIn "$nsB" "$name" A +short)"
check "VPC B associated: curl by name reaches the target" "hello from billing" "$(curlIn "$nsB" "http://$name:8080/index.txt")"

if ((failures > 0)); then
  echo "$failures check(s) failed"; echo "--- trellisd stderr"; tail -20 "$work/err"; exit 1
fi
echo "all checks passed"
