#!/usr/bin/env bash
# bench proxy — `make bench-proxy`. In ONE run, with fortio v1.68.2 at a fixed
# 1000 qps, 16 connections (after a warm-up), then at max throughput (-qps 0):
#   (a) fortio's echo server directly, (b) sidecarkit proxy inbound (--app),
#   (c) sidecarkit proxy outbound (--upstream, the upstream.Cluster path),
#   (d) nginx, (e) haproxy — each with one worker (GOMAXPROCS=1 /
#   worker_processes 1 / nbthread 1), upstream keep-alive on, access logs off.
# Writes integration/bench/results/proxy.md and proxy.png (added latency over
# direct, CPU % of a core, peak RSS, max rps, machine load, ratios to haproxy).
# Env: ROUNDS (3) x DURATION (10s) per target, WARMUP (5s), MAXDUR (10s), QPS (1000), CONNS (16).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$here/results
cache=${SIDECARKIT_CACHE:-$HOME/.cache/sidecarkit}
fortio=$cache/bin/fortio
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-10s} WARMUP=${WARMUP:-5s} MAXDUR=${MAXDUR:-10s} QPS=${QPS:-1000} CONNS=${CONNS:-16}
work=$(mktemp -d /tmp/skbench-proxy.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

[ -x "$fortio" ] || { echo "fortio missing: run make testenv" >&2; exit 1; }
nginx=$(command -v nginx || echo /usr/sbin/nginx); haproxy=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -x "$nginx" ] && [ -x "$haproxy" ] || { echo "need nginx and haproxy (apt-get install nginx haproxy)" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BE=$(free_port); IN=$(free_port); OUTP=$(free_port); NG=$(free_port); HA=$(free_port); ADM=$(free_port)

echo "== build proxy"
(cd "$root/proxy" && GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$work/proxy" ./cmd/proxy)

echo "== start backend (fortio server :$BE)"
"$fortio" server -http-port 127.0.0.1:$BE -grpc-port disabled -redirect-port disabled -loglevel error >"$work/fortio-server.log" 2>&1 &
pids+=($!)

echo "== start sidecarkit proxy (GOMAXPROCS=1)"
GOMAXPROCS=1 "$work/proxy" --app 127.0.0.1:$BE --upstream http://127.0.0.1:$BE --inbound-addr 127.0.0.1:$IN \
  --outbound-addr 127.0.0.1:$OUTP --admin-addr 127.0.0.1:$ADM --prometheus-addr "" --access-log=false --log-level warn --pprof \
  >"$work/proxy.log" 2>&1 &
proxy_pid=$!; pids+=($proxy_pid)

echo "== start nginx (worker_processes 1)"
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
  upstream be { server 127.0.0.1:$BE; keepalive 64; }
  server {
    listen 127.0.0.1:$NG;
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }
  }
}
EOF
"$nginx" -c "$work/nginx/nginx.conf" -p "$work/nginx" >"$work/nginx/out.log" 2>&1 &
nginx_pid=$!; pids+=($nginx_pid)

echo "== start haproxy (nbthread 1)"
cat >"$work/haproxy.cfg" <<EOF
global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend f
  bind 127.0.0.1:$HA
  default_backend b
backend b
  server s1 127.0.0.1:$BE
EOF
"$haproxy" -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
haproxy_pid=$!; pids+=($haproxy_pid)

for port in $BE $IN $OUTP $NG $HA; do
  for i in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port/echo" 2>/dev/null && break; sleep 0.1; done
done
nginx_worker=$(pgrep -P "$nginx_pid" | head -1)

cputicks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hwm() { awk '/VmHWM/{print $2}' "/proc/$1/status"; }
nproc_=$(nproc); load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# name|url|pid whose CPU is measured
targets=(
  "direct|http://127.0.0.1:$BE/echo|"
  "sidecarkit-inbound|http://127.0.0.1:$IN/echo|$proxy_pid"
  "sidecarkit-outbound|http://127.0.0.1:$OUTP/echo|$proxy_pid"
  "nginx|http://127.0.0.1:$NG/echo|$nginx_worker"
  "haproxy|http://127.0.0.1:$HA/echo|$haproxy_pid"
)
tck=$(getconf CLK_TCK)
for t in "${targets[@]}"; do
  IFS='|' read -r name url pid <<<"$t"
  echo "== $name: warm-up $WARMUP"
  "$fortio" load -quiet -qps "$QPS" -c "$CONNS" -t "$WARMUP" "$url" >/dev/null 2>&1
  : >"$work/$name.cpu"
done
# ROUNDS rounds of DURATION each, the targets' order rotating every round,
# so a burst of load from other work on the machine hits them all alike.
for round in $(seq "$ROUNDS"); do
  for i in "${!targets[@]}"; do
    t=${targets[$(( (i + round) % ${#targets[@]} ))]}
    IFS='|' read -r name url pid <<<"$t"
    echo "== round $round/$ROUNDS: $name at $QPS qps x $CONNS conns for $DURATION"
    c0=0; [ -n "$pid" ] && c0=$(cputicks "$pid")
    s0=$(date +%s.%N)
    "$fortio" load -quiet -qps "$QPS" -c "$CONNS" -t "$DURATION" -json "$work/$name.$round.json" "$url" >"$work/$name.log" 2>&1 \
      || { echo "fortio failed against $name:"; tail -5 "$work/$name.log"; tail -20 "$work/proxy.log"; exit 1; }
    s1=$(date +%s.%N)
    c1=0; [ -n "$pid" ] && c1=$(cputicks "$pid")
    echo "$c0 $c1 $s0 $s1 $tck" >>"$work/$name.cpu"
  done
done
echo "== a CPU profile of the proxy (separate, unmeasured $QPS qps inbound run)"
curl -fsS -o "$work/cpu.prof" "http://127.0.0.1:$ADM/debug/pprof/profile?seconds=10" &
prof_pid=$!
"$fortio" load -quiet -qps "$QPS" -c "$CONNS" -t 12s "http://127.0.0.1:$IN/echo" >/dev/null 2>&1 || true
wait "$prof_pid" || true
for t in "${targets[@]}"; do
  IFS='|' read -r name url pid <<<"$t"
  echo "== $name: max throughput (-qps 0) for $MAXDUR"
  "$fortio" load -quiet -qps 0 -c "$CONNS" -t "$MAXDUR" -json "$work/$name.max.json" "$url" >"$work/$name.max.log" 2>&1 \
    || { echo "fortio failed against $name:"; tail -5 "$work/$name.max.log"; tail -20 "$work/proxy.log"; exit 1; }
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
echo "proxy $(hwm $proxy_pid)" >"$work/rss"
echo "nginx $(( $(hwm $nginx_worker) + $(hwm $nginx_pid) ))" >>"$work/rss"
echo "haproxy $(hwm $haproxy_pid)" >>"$work/rss"

if [ -s "$work/cpu.prof" ]; then
  go tool pprof -top -nodecount=12 "$work/proxy" "$work/cpu.prof" 2>/dev/null | sed -n '/flat%/,$p' >"$work/pprof.top" || true
  go tool pprof -top -cum -nodecount=400 "$work/proxy" "$work/cpu.prof" 2>/dev/null \
    | awk '/Syscall6$|gcBgMarkWorker$|net\/http.\(\*conn\).serve$|h1.\(\*Server\).ServeConn$|direct.\(\*Forwarder\).fastRoundTrip$|persistConn\).writeLoop$|persistConn\).readLoop$|httpproxy.\(\*Handler\).ServeHTTP$|runtime.findRunnable$|runtime.mallocgc$/{print $4, $5, $6}' >"$work/pprof.cum" || true
fi
python3 - "$work" "$out" "$nproc_" "$load_start" "$load_end" "$QPS" "$CONNS" "$DURATION" "$MAXDUR" "$ROUNDS" <<'PY'
import json, sys, os, struct, zlib, datetime, platform, subprocess
work, out, ncpu, load0, load1, qps, conns, dur, maxdur, rounds = sys.argv[1:]
names = ["direct", "sidecarkit-inbound", "sidecarkit-outbound", "nginx", "haproxy"]
rss = dict(l.split() for l in open(os.path.join(work, "rss")))
rows = {}
def median(v):
    v = sorted(v)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
for n in names:
    pcts, qpss, errs, count = {50: [], 90: [], 99: []}, [], 0, 0
    for r in range(1, int(rounds) + 1):
        j = json.load(open(os.path.join(work, "%s.%d.json" % (n, r))))
        got = {p["Percentile"]: p["Value"] * 1000 for p in j["DurationHistogram"]["Percentiles"]}
        for p in pcts:
            pcts[p].append(got[p])
        qpss.append(j["ActualQPS"])
        errs += sum(v for k, v in j.get("RetCodes", {}).items() if k != "200")
        count += j["DurationHistogram"]["Count"]
    ticks = secs = 0.0
    for line in open(os.path.join(work, n + ".cpu")):
        c0, c1, s0, s1, tck = line.split()
        ticks += (int(c1) - int(c0)) / int(tck)
        secs += float(s1) - float(s0)
    mx = json.load(open(os.path.join(work, n + ".max.json")))
    rows[n] = dict(p50=median(pcts[50]), p90=median(pcts[90]), p99=median(pcts[99]), qps=sum(qpss) / len(qpss),
                   cpu=ticks / secs * 100 if n != "direct" else None, maxrps=mx["ActualQPS"], errs=errs, n=count)
d = rows["direct"]
for n in names:
    r = rows[n]
    for p in ("p50", "p90", "p99"):
        r["add_" + p] = r[p] - d[p]
    r["cpu_per_krps"] = r["cpu"] / (r["qps"] / 1000) if r["cpu"] is not None else None
rssmib = {"sidecarkit-inbound": int(rss["proxy"]) / 1024, "sidecarkit-outbound": int(rss["proxy"]) / 1024,
          "nginx": int(rss["nginx"]) / 1024, "haproxy": int(rss["haproxy"]) / 1024}
h = rows["haproxy"]
def f(v, fmt="%.3f"):
    return "–" if v is None else fmt % v
L = []
L.append("# proxy benchmark — sidecarkit vs nginx vs haproxy\n")
L.append("Generated by `make bench-proxy` (integration/bench/proxy.sh) on %s UTC. One run, side by side: fortio v1.68.2, "
         "%s qps, %s connections, %s rounds of %s per target (order rotated each round; percentiles are the median of the rounds, CPU is over all rounds) after a warm-up, then `-qps 0` for %s. Every proxy has one worker "
         "(GOMAXPROCS=1 / worker_processes 1 / nbthread 1), upstream keep-alive on, access logs off; the backend is "
         "fortio's echo server (`/echo`). Machine: %s CPUs, shared with other work — load average %s at the start, %s at the end "
         "(the absolute numbers are noisy; compare the ratios).\n" % (datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"), qps, conns, rounds, dur, maxdur, ncpu, load0, load1))
L.append("| target | p50 ms | p90 ms | p99 ms | added p50 | added p90 | added p99 | CPU % of a core | CPU % per 1000 rps | peak RSS MiB | max rps | non-200 |")
L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
for n in names:
    r = rows[n]
    L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f | %d |" % (
        n, f(r["p50"]), f(r["p90"]), f(r["p99"]),
        "–" if n == "direct" else f(r["add_p50"], "%+.3f"), "–" if n == "direct" else f(r["add_p90"], "%+.3f"),
        "–" if n == "direct" else f(r["add_p99"], "%+.3f"), f(r["cpu"], "%.1f"), f(r["cpu_per_krps"], "%.1f"),
        f(rssmib.get(n), "%.1f"), r["maxrps"], r["errs"]))
L.append("")
L.append("Ratios to haproxy (target: added p50 and p99 ≤ 1.0×, CPU per 1000 rps ≤ 1.5×; peak RSS target ≤ 20 MiB):\n")
L.append("| target | added p50 | added p99 | CPU per 1000 rps | peak RSS | max rps |")
L.append("|---|---|---|---|---|---|")
def ratio(a, b):
    return "–" if a is None or b is None or b <= 0 else "%.2f×" % (a / b)
for n in ["sidecarkit-inbound", "sidecarkit-outbound", "nginx"]:
    r = rows[n]
    L.append("| %s | %s | %s | %s | %s | %s |" % (n, ratio(r["add_p50"], h["add_p50"]), ratio(r["add_p99"], h["add_p99"]),
             ratio(r["cpu_per_krps"], h["cpu_per_krps"]), ratio(rssmib[n], rssmib["haproxy"]), ratio(r["maxrps"], h["maxrps"])))
L.append("")
L.append("Peak RSS is VmHWM after all runs (nginx: master + worker). sidecarkit-inbound goes through the proxy's direct "
         "forwarder (the app path, dialed from 127.0.0.6); sidecarkit-outbound through `upstream.Cluster` (load balancing, retries, "
         "breakers). Both live in one process, so their RSS is the same figure.\n")
L.append("![chart](proxy.png)\n")
if os.path.exists(os.path.join(work, "pprof.cum")):
    L.append("## Where the proxy's CPU goes (pprof, 10 s of an extra, unmeasured %s qps inbound run)\n" % qps)
    L.append("Cumulative share of the proxy's CPU samples:\n")
    L.append("| share | function |")
    L.append("|---|---|")
    for line in open(os.path.join(work, "pprof.cum")):
        parts = line.split()
        if len(parts) == 3:
            L.append("| %s | `%s` |" % (parts[1], parts[2]))
    L.append("")
    L.append("Top functions by own time:\n")
    L.append("```")
    L.append(open(os.path.join(work, "pprof.top")).read().rstrip())
    L.append("```\n")
open(os.path.join(out, "proxy.md"), "w").write("\n".join(L) + "\n")
print("\n".join(L))

# --- a small PNG chart, drawn by hand (no plotting library on the machine) ---
FONT = {  # 3x5 glyphs
 '0':"111101101101111",'1':"010110010010111",'2':"111001111100111",'3':"111001111001111",'4':"101101111001001",
 '5':"111100111001111",'6':"111100111101111",'7':"111001010010010",'8':"111101111101111",'9':"111101111001111",
 '.':"000000000000010",'%':"101001010100101",'+':"000010111010000",'-':"000000111000000",' ':"000000000000000",
 ':':"000010000010000",'/':"001001010100100",'(':"010100100100010",')':"010001001001010",
}
for ch, g in zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", [
 "010101111101101","110101110101110","111100100100111","110101101101110","111100110100111","111100110100100",
 "111100101101111","101101111101101","111010010010111","001001001101111","101101110101101","100100100100111",
 "101111111101101","111101101101101","111101101101111","111101111100100","111101101111011","111101110101101",
 "111100111001111","111010010010010","101101101101111","101101101101010","101101111111101","101101010101101",
 "101101111010010","111001010100111"]):
    FONT[ch] = g
W, H = 900, 520
img = [[(255, 255, 255)] * W for _ in range(H)]
def rect(x0, y0, x1, y1, c):
    for y in range(max(0, int(y0)), min(H, int(y1))):
        row = img[y]
        for x in range(max(0, int(x0)), min(W, int(x1))):
            row[x] = c
def text(x, y, s, c=(0, 0, 0), sc=2):
    for ch in s.upper():
        g = FONT.get(ch, FONT[' '])
        for i, b in enumerate(g):
            if b == '1':
                rect(x + (i % 3) * sc, y + (i // 3) * sc, x + (i % 3 + 1) * sc, y + (i // 3 + 1) * sc, c)
        x += 4 * sc
colors = {"sidecarkit-inbound": (31, 119, 180), "sidecarkit-outbound": (23, 190, 207), "nginx": (44, 160, 44), "haproxy": (214, 39, 40)}
short = {"sidecarkit-inbound": "SK IN", "sidecarkit-outbound": "SK OUT", "nginx": "NGINX", "haproxy": "HAPROXY"}
panels = [("ADDED P50 MS", "add_p50", "%.2f"), ("ADDED P99 MS", "add_p99", "%.2f"), ("CPU % PER 1000 RPS", "cpu_per_krps", "%.1f"), ("PEAK RSS MIB", "rss", "%.0f")]
pw = W // len(panels)
text(10, 8, "PROXY BENCH: %s QPS %s CONNS - LOWER IS BETTER" % (qps, conns), sc=3)
for pi, (title, key, fmt) in enumerate(panels):
    x0 = pi * pw + 20
    text(x0, 50, title)
    vals = [(n, rssmib[n] if key == "rss" else rows[n][key]) for n in colors]
    top = max(max(v for _, v in vals), 1e-9)
    base, height = 470, 380
    bw = (pw - 40) // len(vals)
    for i, (n, v) in enumerate(vals):
        bh = max(0.0, v) / top * height
        rect(x0 + i * bw + 4, base - bh, x0 + (i + 1) * bw - 4, base, colors[n])
        text(x0 + i * bw + 4, base - bh - 14, fmt % v)
        text(x0 + i * bw + 4, base + 8, short[n], sc=1)
    rect(x0, base, x0 + pw - 40, base + 1, (0, 0, 0))
raw = b"".join(b"\x00" + bytes(v for px in row for v in px) for row in img)
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
open(os.path.join(out, "proxy.png"), "wb").write(png)
PY
echo "== wrote $out/proxy.md and $out/proxy.png"
