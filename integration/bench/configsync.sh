#!/usr/bin/env bash
# configsync.sh — configsync side by side with consul-template v0.41.1 on one
# Consul agent and one key (wait off): PUT → file latency p50/p99 over 1,000
# changes, idle and active CPU and RSS. Writes results/configsync.md.
# Usage: integration/bench/configsync.sh [changes]   (make bench-configsync)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${SIDECARKIT_CACHE:-$HOME/.cache/sidecarkit}
bin=$cache/bin
work=$cache/bench/configsync
mkdir -p "$work" "$here/results"
export GOWORK=off CGO_ENABLED=0

for b in consul consul-template; do
  [ -x "$bin/$b" ] || "$root/integration/testenv/build.sh" "$b"
done
echo "bench-configsync: building configsync and the harness..."
(cd "$root/configsync" && go build -trimpath -ldflags='-s -w' -o "$work/configsync" ./cmd/configsync \
  && go build -o "$work/bench" ./internal/bench)
"$work/bench" -rt -consul "$bin/consul" -consul-template "$bin/consul-template" -configsync "$work/configsync" \
  -changes "${1:-1000}" -out "$here/results/configsync.md"
cat "$here/results/configsync.md"
