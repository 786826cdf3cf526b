# sidecarkit — see README.md. Targets follow CONTRACT.md.
SHELL := /bin/bash
MODULES := shared proxy initnet ambassador adapter configsync integration manifests injector
HELPERS := proxy initnet ambassador adapter configsync injector
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X github.com/sidecarkit/sidecarkit/shared/version.Version=$(VERSION) -X github.com/sidecarkit/sidecarkit/shared/version.Commit=$(COMMIT)
export SIDECARKIT_CACHE ?= $(HOME)/.cache/sidecarkit
GOTEST_FLAGS ?= -race -count=1 -timeout 30m

.PHONY: all build test lint testenv images demo demo-down demo-k8s bench bench-proxy bench-ambassador bench-adapter bench-configsync clean

all: build

## build: static helper binaries into bin/
build:
	@mkdir -p bin
	@for h in $(HELPERS); do \
	  (cd $$h && CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o ../bin/$$h ./cmd/$$h) || exit 1; \
	done
	@ls -l bin/

## test: every module's tests, each module alone (GOWORK=off), with the race detector
test:
	@fail=0; for m in $(MODULES); do \
	  echo "== go test $$m"; \
	  (cd $$m && GOWORK=off go test $(GOTEST_FLAGS) ./...) || fail=1; \
	done; exit $$fail

## lint: gofmt, go vet, per-module build alone, go mod tidy changes nothing
lint:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do \
	  echo "== lint $$m"; \
	  (cd $$m && GOWORK=off go vet ./... && GOWORK=off go build ./...) || exit 1; \
	  cp $$m/go.mod /tmp/sk-go.mod; cp $$m/go.sum /tmp/sk-go.sum 2>/dev/null || : > /tmp/sk-go.sum; \
	  (cd $$m && GOWORK=off go mod tidy) || exit 1; \
	  if ! cmp -s $$m/go.mod /tmp/sk-go.mod || ! cmp -s $$m/go.sum /tmp/sk-go.sum; then \
	    echo "$$m: go mod tidy changes go.mod/go.sum"; cp /tmp/sk-go.mod $$m/go.mod; cp /tmp/sk-go.sum $$m/go.sum; exit 1; fi; \
	done
	@echo "lint ok"

## testenv: real servers for tests (Vault, Consul, VictoriaLogs, fortio, consul-template, Jaeger, etcd, CoreDNS, Kubernetes v1.34), cached
testenv:
	@integration/testenv/build.sh

## images: the four FROM-scratch helper images and the injector's
images:
	@integration/images.sh

## demo: the whole pod in docker compose (the main job)
demo:
	@integration/demo.sh up

demo-down:
	@integration/demo.sh down

## demo-k8s: the same pod on a local Kubernetes v1.34 node (root, make testenv); Ctrl-C tears it down
demo-k8s:
	@cd manifests && SIDECARKIT_DEMO_K8S=1 GOWORK=off go test -count=1 -timeout 0 -v -run '^TestDemoKubernetes$$' .

## bench: every benchmark; results under integration/bench/results/
bench: bench-proxy bench-ambassador bench-adapter bench-configsync

bench-proxy:
	@integration/bench/proxy.sh
	@integration/bench/proxy-mtls.sh

bench-ambassador bench-adapter bench-configsync:
	@integration/bench/$(patsubst bench-%,%,$@).sh

clean:
	rm -rf bin
