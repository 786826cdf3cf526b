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
# The proxy's own cost without the machine's scheduling noise: one request at
# a time through the proxy vs straight to the same in-process upstream.
bench=$(cd "$root/ambassador" && GOWORK=off go test -run '^$' -bench . -benchtime 5000x -count 3 ./apiproxy | awk '/^Benchmark/ {n[$1]++; s[$1]+=$3} END {for (k in s) printf "%s %.0f\n", k, s[k]/n[k]}')
direct=$(awk '/BenchmarkDirect/ {print $2}' <<<"$bench"); proxied=$(awk '/BenchmarkProxied/ {print $2}' <<<"$bench")
{
  echo
  echo "## Proxy cost in isolation (go test -bench ./apiproxy, serial requests, mean of 3×5000)"
  echo
  echo "| | µs/request |"
  echo "|---|---:|"
  awk -v d="$direct" -v p="$proxied" 'BEGIN {printf "| direct to an in-process upstream | %.1f |\n| through the proxy (adds the token, timeouts, metrics) | %.1f |\n| **added by the proxy** | **%.1f** (ratio %.2f×) |\n", d/1000, p/1000, (p-d)/1000, p/d}'
} >> "$root/integration/bench/results/ambassador.md"
tail -8 "$root/integration/bench/results/ambassador.md"
