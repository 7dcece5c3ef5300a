#!/usr/bin/env bash
# Installs what Trellis needs to build, run and test, from Debian packages and the npm registry.
# Idempotent: when everything is present it only checks and returns.
set -euo pipefail
cd "$(dirname "$0")/.."

build_pkgs=(cmake ninja-build clang libclang-rt-14-dev pkg-config libssl-dev libsqlite3-dev
  libasio-dev node-llhttp libnghttp2-dev nlohmann-json3-dev libyaml-cpp-dev libcli11-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler)
test_pkgs=(curl openssl nghttp2-client wrk dnsutils iproute2 etcd-server etcd-client python3 python3-grpcio python3-protobuf)
# The console's browser tests (test/integration/console.test.mjs): Debian's chromium, driven by puppeteer-core, and
# a font for its screenshots.
test_pkgs+=(chromium fonts-liberation)
# Node.js may come from Debian (nodejs + npm) or be preinstalled with its own npm: only install when absent.
if [[ "${1:-}" == "--test" ]] && ! { command -v node && command -v npm; } >/dev/null; then
  test_pkgs+=(nodejs npm)
fi
# bench/run.sh only (never the test suite): the proxies Trellis is measured against, and the profiler.
bench_pkgs=(wrk nghttp2-client nginx haproxy valgrind curl python3 openssl)

want=("${build_pkgs[@]}")
[[ "${1:-}" == "--test" ]] && want+=("${test_pkgs[@]}")
[[ "${1:-}" == "--bench" ]] && want+=("${bench_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# etcd-server's package starts a system etcd; the tests start their own.
if [[ "${1:-}" == "--test" ]] && command -v systemctl >/dev/null && systemctl is-active -q etcd 2>/dev/null; then
  systemctl stop etcd || true
fi

# nginx and haproxy packages enable a system service; bench/run.sh starts its own instances.
if [[ "${1:-}" == "--bench" ]] && command -v systemctl >/dev/null; then
  for unit in nginx haproxy; do
    systemctl is-enabled -q "$unit" 2>/dev/null && { systemctl disable -q "$unit" || true; }
    systemctl is-active -q "$unit" 2>/dev/null && { systemctl stop "$unit" || true; }
  done
fi

if [[ "${1:-}" == "--test" ]]; then
  # Test-time npm packages (the real AWS SDK, SigV4 signers, puppeteer-core), pinned by test/integration/package-lock.json.
  if [[ ! -d test/integration/node_modules ]] || [[ test/integration/package-lock.json -nt test/integration/node_modules ]]; then
    (cd test/integration && npm ci --no-audit --no-fund --loglevel=error)
    touch test/integration/node_modules
  fi
fi
