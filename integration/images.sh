#!/usr/bin/env bash
# images.sh — builds sidecarkit's FROM-scratch images with no registry:
# static Go binaries built here (CGO_ENABLED=0, -trimpath, -s -w, version
# stamped), the host's CA certificates, a minimal /etc/passwd, USER 65532, OCI
# labels. Prints every image's size; fails if a helper image exceeds 15 MB.
#
# Usage: integration/images.sh [--missing] [name...]
#   names: proxy ambassador adapter configsync   (the four helper images)
#          injector                               (the admission webhook)
#          pause demoapp                          (the demo pod's own)
#          server-vault server-consul server-victorialogs (from `make testenv` binaries)
#   default: all.  --missing: only images not present yet.
# Env: VERSION, COMMIT (default from git), SIDECARKIT_CACHE, IMAGE_PREFIX (sidecarkit/).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${SIDECARKIT_CACHE:-$HOME/.cache/sidecarkit}
prefix=${IMAGE_PREFIX:-sidecarkit/}
VERSION=${VERSION:-$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)}
COMMIT=${COMMIT:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)}
CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS="-s -w -X github.com/sidecarkit/sidecarkit/shared/version.Version=$VERSION -X github.com/sidecarkit/sidecarkit/shared/version.Commit=$COMMIT"
# 15 MB limit for our own images, checked on the compressed size (what a
# registry stores and a node pulls; envoyproxy/envoy's 28 MB is quoted the same
# way). The uncompressed size docker reports is printed beside it.
LIMIT=$((15 * 1000 * 1000))
helpers=(proxy ambassador adapter configsync injector)
all=(proxy ambassador adapter configsync injector pause demoapp server-vault server-consul server-victorialogs)
export DOCKER_BUILDKIT=0 # the legacy builder: no buildx, no registry access for FROM scratch

missing=0
want=()
for a in "$@"; do
  case $a in
    --missing) missing=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) want+=("$a") ;;
  esac
done
[ ${#want[@]} -eq 0 ] && want=("${all[@]}")
for n in "${want[@]}"; do
  case " ${all[*]} " in *" $n "*) ;; *) echo "images.sh: unknown image $n (want one of: ${all[*]})" >&2; exit 2 ;; esac
done
command -v docker >/dev/null || { echo "images.sh: docker is not installed" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "images.sh: the docker engine does not answer (is dockerd running?)" >&2; exit 1; }
ca=/etc/ssl/certs/ca-certificates.crt
[ -r "$ca" ] || { echo "images.sh: $ca missing: apt-get install -y ca-certificates" >&2; exit 1; }

have() { docker image inspect "$prefix$1:latest" >/dev/null 2>&1; }

stage_root() { # dir → a fresh rootfs skeleton
  local r=$1/rootfs
  mkdir -p "$r/etc/ssl/certs" "$r/usr/local/bin" "$r/tmp"
  chmod 1777 "$r/tmp"
  cp "$ca" "$r/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nproxy:x:1337:1337:sidecarkit proxy:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$r/etc/passwd"
  printf 'root:x:0:\nproxy:x:1337:\nnonroot:x:65532:\n' >"$r/etc/group"
}

gobuild() { # module dir, package, output
  (cd "$root/$1" && GOWORK=off CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "$LDFLAGS" -o "$3" "$2")
}

# multicall dir out — builds docker/proxy-multicall (proxy + initnet in one
# binary, dispatched on argv[0]) in a temporary workspace of the proxy,
# initnet and shared modules, so no go.mod in the tree has to require them.
multicall() {
  local d=$1 out=$2 gov
  gov=$(go env GOVERSION); gov=${gov#go}
  mkdir -p "$d"
  # the tree keeps it behind "//go:build ignore" (out of the integration
  # module and its go mod tidy); the staged copy drops that line
  sed '/^\/\/go:build ignore$/d' "$here/docker/proxy-multicall/main.go" >"$d/main.go"
  # no require lines: the workspace provides the three modules
  printf 'module sidecarkit.local/proxyimage\n\ngo %s\n' "$gov" >"$d/go.mod"
  printf 'go %s\n\nuse (\n\t%s\n\t%s\n\t%s\n\t%s\n)\n' "$gov" "$d" "$root/proxy" "$root/initnet" "$root/shared" >"$d/go.work"
  if ! (cd "$d" && GOWORK="$d/go.work" CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "$LDFLAGS" -o "$out" .) >"$d.log" 2>&1; then
    echo; head -n 5 "$d.log" | sed 's/^/images.sh: multi-call build: /' >&2
    rm -f "$d.log"; return 1
  fi
  rm -f "$d.log"
}

# progress label cmd... — runs cmd, printing a line every 30 s while it runs
# (a cold Go build of Vault prints nothing for many minutes).
progress() {
  local label=$1; shift
  "$@" &
  local pid=$! t0; t0=$(date +%s)
  while kill -0 "$pid" 2>/dev/null; do
    for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30; do
      sleep 1; kill -0 "$pid" 2>/dev/null || break
    done
    kill -0 "$pid" 2>/dev/null && echo "images.sh: ... still $label ($(( $(date +%s) - t0 ))s)" >&2
  done
  wait "$pid"
}

# server_bin name → path of the `make testenv` binary, building it when missing
# (and waiting for a build of it already running, e.g. `make testenv`).
server_bin() {
  local name=$1 bin=$cache/bin
  local waited=0
  while pgrep -f "$bin/$name-v[^ ]*\.tmp" >/dev/null 2>&1; do
    [ $waited -eq 0 ] && echo "images.sh: waiting for a $name build already in progress (a cold Vault build takes 10-20 minutes)..." >&2
    [ $waited -gt 0 ] && [ $((waited % 3)) -eq 0 ] && echo "images.sh: ... still waiting for the $name build ($((waited * 10))s)" >&2
    waited=$((waited + 1)); sleep 10
  done
  if [ ! -x "$bin/$name" ]; then
    echo "images.sh: $name is not built yet: running integration/testenv/build.sh $name (a first build from source takes minutes; Vault 10-20 on 2 cores)" >&2
    progress "building $name" "$here/testenv/build.sh" "$name" >&2
  fi
  echo "$bin/$name"
}

build_one() {
  local n=$1 ctx version=$VERSION
  mkdir -p "$cache/images"
  # a private staging dir: two builds at once (make test beside make demo)
  # never share one
  ctx=$(mktemp -d "$cache/images/$n.XXXXXX")
  cur_ctx=$ctx
  stage_root "$ctx"
  local r=$ctx/rootfs
  case $n in
    proxy)
      if multicall "$ctx/multicall" "$r/usr/local/bin/proxy"; then
        ln -s proxy "$r/usr/local/bin/initnet"
      else
        printf 'images.sh: the multi-call build failed (above): shipping proxy and initnet as two binaries ...' >&2
        gobuild proxy ./cmd/proxy "$r/usr/local/bin/proxy"; gobuild initnet ./cmd/initnet "$r/usr/local/bin/initnet"
      fi ;;
    ambassador|adapter|configsync|injector) gobuild "$n" "./cmd/$n" "$r/usr/local/bin/$n" ;;
    pause) gobuild integration ./docker/pause "$r/usr/local/bin/pause" ;;
    demoapp) gobuild integration ./demoapp "$r/usr/local/bin/demoapp" ;;
    server-vault|server-consul|server-victorialogs)
      local s=${n#server-} src
      src=$(server_bin "$s" | tail -n1)
      version=$(basename "$(readlink -f "$src")"); version=${version#"$s"-}
      case $s in
        victorialogs) cp -L "$src" "$r/victoria-logs-prod"; mkdir -p "$r/victoria-logs-data"; chmod 0777 "$r/victoria-logs-data" ;;
        *) mkdir -p "$r/bin"; cp -L "$src" "$r/bin/$s" ;;
      esac
      ;;
  esac
  cp "$here/docker/$n.Dockerfile" "$ctx/Dockerfile"
  if ! docker build --build-arg VERSION="$version" --build-arg COMMIT="$COMMIT" --build-arg CREATED="$CREATED" \
    -t "$prefix$n:latest" -t "$prefix$n:$version" "$ctx" >"$ctx.log" 2>&1; then
    echo; echo "images.sh: docker build of $prefix$n failed:" >&2; cat "$ctx.log" >&2; rm -rf "$ctx.log" "$ctx"; return 1
  fi
  rm -rf "$ctx.log" "$ctx"
}

cur_ctx=""
trap '[ -z "$cur_ctx" ] || rm -rf "$cur_ctx" "$cur_ctx.log" "$cur_ctx/multicall.log"' EXIT
start=$(date +%s)
built=()
for n in "${want[@]}"; do
  if [ $missing -eq 1 ] && have "$n"; then continue; fi
  t0=$(date +%s)
  printf 'images.sh: building %s%s ...' "$prefix" "$n"
  build_one "$n"
  printf ' done in %ss\n' $(( $(date +%s) - t0 ))
  built+=("$n")
done
[ ${#built[@]} -gt 0 ] && echo "images.sh: built ${#built[@]} image(s) in $(( $(date +%s) - start ))s (version $VERSION, commit $COMMIT)"

mb() { awk -v s="$1" 'BEGIN{printf "%.1f MB", s/1000000}'; }
fail=0
printf '\n%-38s %12s %12s  %s\n' IMAGE UNCOMPRESSED COMPRESSED NOTE
for n in "${want[@]}"; do
  have "$n" || continue
  size=$(docker image inspect -f '{{.Size}}' "$prefix$n:latest")
  case " ${helpers[*]} pause demoapp " in
    *" $n "*)
      gz=$(docker save "$prefix$n:latest" | gzip -6 -c | wc -c)
      if [ "$gz" -gt $LIMIT ]; then note="OVER the 15 MB limit"; fail=1
      elif [ "$size" -gt $LIMIT ]; then note="ok compressed; uncompressed above 15 MB"
      else note="ok: under 15 MB either way"; fi
      printf '%-38s %12s %12s  %s\n' "$prefix$n:latest" "$(mb "$size")" "$(mb "$gz")" "$note" ;;
    *) printf '%-38s %12s %12s  %s\n' "$prefix$n:latest" "$(mb "$size")" "-" "test server, not size-limited" ;;
  esac
done
exit $fail
