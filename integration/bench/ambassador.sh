#!/usr/bin/env bash
# ambassador.sh — the ambassador side by side with Vault Agent (same vault
# binary, same Vault, same secret, same refresh interval): kv-put→file and
# kv-put→notify latency over ROTATIONS rotations, API proxy added latency at
# QPS rps with fortio (vs direct and vs the Agent's api_proxy), steady RSS/CPU.
# Writes integration/bench/results/ambassador.md. Needs `make testenv`.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${SIDECARKIT_CACHE:-$HOME/.cache/sidecarkit}
bin=$cache/bin
for b in vault fortio; do
  [ -x "$bin/$b" ] || { echo "ambassador bench: $bin/$b missing: run make testenv" >&2; exit 1; }
done
work=$(mktemp -d /tmp/ambench-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
(cd "$root/ambassador" && GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$work/ambassador" ./cmd/ambassador \
  && GOWORK=off go build -o "$work/ambench" ./tools/ambench)
mkdir -p "$root/integration/bench/results"
"$work/ambench" -vault "$bin/vault" -fortio "$bin/fortio" -ambassador "$work/ambassador" \
  -rotations "${ROTATIONS:-200}" -refresh "${REFRESH:-1s}" -qps "${QPS:-200}" -load "${LOAD:-15s}" -steady "${STEADY:-30s}" \
  -out "$root/integration/bench/results/ambassador.md"
