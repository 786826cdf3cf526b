#!/usr/bin/env bash
# adapter.sh — the adapter side by side with rsyslog (imfile → omelasticsearch)
# on the same generated files (legacy format and JSON lines, SIZE MiB each,
# default 1024) into the same VictoriaLogs: throughput (MiB/s, lines/s), CPU
# and peak RSS; plus the adapter into a discard sink. Writes
# results/adapter.md and results/adapter.png.
# Usage: integration/bench/adapter.sh [size-MiB]   (make bench-adapter)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${SIDECARKIT_CACHE:-$HOME/.cache/sidecarkit}
bin=$cache/bin
work=${ADBENCH_WORK:-/tmp/adbench}
mkdir -p "$work" "$here/results" "$cache/bench/adapter"
export GOWORK=off CGO_ENABLED=0

[ -x "$bin/victorialogs" ] || "$root/integration/testenv/build.sh" victorialogs
command -v rsyslogd >/dev/null || { echo "bench-adapter: rsyslogd missing: apt-get install -y rsyslog rsyslog-elasticsearch" >&2; exit 1; }
echo "bench-adapter: building the adapter and the harness..."
(cd "$root/adapter" && go build -trimpath -ldflags='-s -w' -o "$cache/bench/adapter/adapter" ./cmd/adapter \
  && go build -o "$cache/bench/adapter/adbench" ./tools/adbench)
# nice -10 (inherited by the adapter, rsyslogd and VictoriaLogs): the machine
# is shared; this keeps other work from dominating the wall-clock figures.
nice=(); [ "$(id -u)" = 0 ] && nice=(nice -n -10)
"${nice[@]}" "$cache/bench/adapter/adbench" -adapter "$cache/bench/adapter/adapter" -victorialogs "$bin/victorialogs" \
  -size "${1:-${SIZE:-1024}}" -work "$work" -out "$here/results/adapter.md" -png "$here/results/adapter.png"
cat "$here/results/adapter.md"
