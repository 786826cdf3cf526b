#!/usr/bin/env bash
# build.sh — builds the real servers the tests use (Vault, Consul, VictoriaLogs,
# fortio, consul-template) from the Go module proxy into a cache directory
# outside the work tree, and skips any whose pinned binary is already there.
# Usage: build.sh [name...]   (default: all).  Cache: $SIDECARKIT_CACHE/bin.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${SIDECARKIT_CACHE:-$HOME/.cache/sidecarkit}
bin=$cache/bin
mkdir -p "$bin"
export GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod

# name|version|how
pins=(
  "victorialogs|v1.121.0|module"
  "consul|v1.21.0|module"
  "vault|v1.19.5|module"
  "fortio|v1.68.2|install fortio.org/fortio"
  "h2spec|v2.2.1+incompatible|install github.com/summerwind/h2spec/cmd/h2spec"
  "consul-template|v0.41.1|install github.com/hashicorp/consul-template"
  "helm|v3.19.5|install helm.sh/helm/v3/cmd/helm" # injector chart: helm lint / helm template
)

want=("$@")
selected() { [ ${#want[@]} -eq 0 ] && return 0; local w; for w in "${want[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }

for pin in "${pins[@]}"; do
  IFS='|' read -r name version how <<<"$pin"
  selected "$name" || continue
  dest=$bin/$name-$version
  if [ -x "$dest" ]; then
    echo "testenv: $name $version cached at $dest"
  else
    start=$(date +%s)
    echo "testenv: building $name $version (a cold build can take minutes)..."
    case $how in
      module)
        pkg=.
        [ "$name" = victorialogs ] && pkg=github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-logs
        (cd "$here/$name" && go build -trimpath -ldflags='-s -w' -o "$dest.tmp" "$pkg")
        ;;
      install*)
        gobin=$(mktemp -d)
        GOBIN=$gobin go install -trimpath -ldflags='-s -w' "${how#install }@$version"
        mv "$gobin"/* "$dest.tmp"; rm -rf "$gobin"
        ;;
    esac
    mv "$dest.tmp" "$dest"
    echo "testenv: built $name $version in $(( $(date +%s) - start ))s"
  fi
  ln -sfn "$name-$version" "$bin/$name"
done
