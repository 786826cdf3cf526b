#!/usr/bin/env bash
# build.sh — builds the real servers the tests use (Vault, Consul, VictoriaLogs,
# fortio, consul-template; etcd, CoreDNS and the Kubernetes v1.34.3 binaries
# for the kube harness) from the Go module proxy into a cache directory
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
  "jaeger|v1.76.0|module"
  "helm|v3.19.5|install helm.sh/helm/v3/cmd/helm" # injector chart: helm lint / helm template
  "etcd|v3.6.4|module"
  "coredns|v1.12.4|install github.com/coredns/coredns"
  "kubernetes|v1.34.3|kubernetes"
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
        [ "$name" = jaeger ] && pkg=github.com/jaegertracing/jaeger/cmd/all-in-one
        [ "$name" = etcd ] && pkg=go.etcd.io/etcd/server/v3
        (cd "$here/$name" && go build -trimpath -ldflags='-s -w' -o "$dest.tmp" "$pkg")
        ;;
      install*)
        gobin=$(mktemp -d)
        GOBIN=$gobin go install -trimpath -ldflags='-s -w' "${how#install }@$version"
        mv "$gobin"/* "$dest.tmp"; rm -rf "$gobin"
        ;;
      kubernetes)
        # One go build of every command into a directory (kubernetes-vX/):
        # they share most packages, so this is much cheaper than one by one.
        # -X sets the real version (else they report v0.0.0-master).
        ld="-s -w"
        for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
          ld="$ld -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=34 -X $p.gitTreeState=clean -X $p.buildDate=2025-12-09T00:00:00Z"
        done
        rm -rf "$dest.tmp"; mkdir -p "$dest.tmp"
        (cd "$here/kubernetes" && go build -trimpath -ldflags="$ld" -o "$dest.tmp/" \
          k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
          k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
          k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl)
        ;;
    esac
    mv "$dest.tmp" "$dest"
    echo "testenv: built $name $version in $(( $(date +%s) - start ))s"
  fi
  ln -sfn "$name-$version" "$bin/$name"
done
