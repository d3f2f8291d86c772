#!/usr/bin/env bash
# Builds the Go test engines of the sandbox (kube-apiserver, kube-controller-manager,
# kube-scheduler, etcd, kwok, kwokctl and, given a fifth and sixth argument, kube-state-metrics
# and helm, which lints and renders deploy/helm/kubehub in the tests) from the Go module proxy
# into a cache keyed by version.
# A second run with the same versions returns at once. Progress goes to stderr, one line a step.
#
# Usage: build-go-engines.sh OUT_DIR K8S_VERSION ETCD_VERSION KWOK_VERSION [KSM_VERSION [HELM_VERSION]]
set -euo pipefail
out=$1 k8s=$2 etcd=$3 kwok=$4 ksm=${5:-} helm=${6:-}
cache=$(dirname "$out")
export GOMODCACHE=${GOMODCACHE:-$cache/go/mod} GOCACHE=${GOCACHE:-$cache/go/build}
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0
mkdir -p "$out/bin"
step() { printf '[build] %s\n' "$*" >&2; }

build_kubernetes() {
  local bins=(kube-apiserver kube-controller-manager kube-scheduler) b missing=0
  for b in "${bins[@]}"; do [ -x "$out/bin/$b" ] || missing=1; done
  [ $missing = 0 ] && { step "kubernetes $k8s: cached"; return; }
  local work="$cache/work/kubernetes-$k8s"
  rm -rf "$work"; mkdir -p "$work"; cd "$work"
  step "kubernetes $k8s: resolving staging modules"
  local gomod; gomod=$(go mod download -json "k8s.io/kubernetes@$k8s" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  local minor=${k8s#v1.}
  printf 'module kubehub.local/engines\n\ngo 1.24\n\n' > go.mod
  # k8s.io/kubernetes pins its staging modules at v0.0.0 and replaces them with local paths;
  # a wrapper module must point each at its published v0.<minor>.<patch> instead.
  grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk '{print $1}' | sort -u | while read -r m; do
    printf 'replace %s => %s v0.%s\n' "$m" "$m" "$minor" >> go.mod
  done
  step "kubernetes $k8s: downloading modules (first run only)"
  go get "k8s.io/kubernetes@$k8s" >&2
  step "kubernetes $k8s: compiling ${bins[*]} (cold: 15-30 min on 2 cores)"
  local pkgs=() ; for b in "${bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  go build -trimpath -o "$out/bin/" -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$k8s -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor%%.*}" "${pkgs[@]}" >&2
  step "kubernetes $k8s: done"
}

build_etcd() {
  [ -x "$out/bin/etcd" ] && { step "etcd $etcd: cached"; return; }
  local work="$cache/work/etcd-$etcd"
  rm -rf "$work"; mkdir -p "$work"; cd "$work"
  printf 'module kubehub.local/etcd\n\ngo 1.24\n' > go.mod
  # etcd's own main module carries replace directives, so a two-line wrapper calls its entry point.
  cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  step "etcd $etcd: downloading and compiling"
  go get "go.etcd.io/etcd/server/v3@$etcd" >&2
  go mod tidy >&2
  go build -trimpath -ldflags "-s -w" -o "$out/bin/etcd" . >&2
  step "etcd $etcd: done"
}

build_kwok() {
  if [ -x "$out/bin/kwok" ] && [ -x "$out/bin/kwokctl" ]; then step "kwok $kwok: cached"; return; fi
  step "kwok $kwok: downloading and compiling"
  GOBIN="$out/bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$kwok" "sigs.k8s.io/kwok/cmd/kwokctl@$kwok" >&2
  # The stage definitions ship inside the module; keep a copy next to the binaries.
  local src="$GOMODCACHE/sigs.k8s.io/kwok@$kwok/kustomize"
  rm -rf "$out/kwok-kustomize"; cp -r "$src" "$out/kwok-kustomize"; chmod -R u+w "$out/kwok-kustomize"
  step "kwok $kwok: done"
}

build_ksm() {
  [ -n "$ksm" ] || return 0
  [ -x "$out/bin/kube-state-metrics" ] && { step "kube-state-metrics $ksm: cached"; return; }
  local work="$cache/work/kube-state-metrics-$ksm"
  rm -rf "$work"; mkdir -p "$work"; cd "$work"
  # `go install module@version` asks the proxy for the module's version list, which it refuses
  # for kube-state-metrics (403); a wrapper module fetches the exact version instead.
  printf 'module kubehub.local/ksm\n\ngo 1.24\n' > go.mod
  step "kube-state-metrics $ksm: downloading and compiling"
  go get "k8s.io/kube-state-metrics/v2@$ksm" >&2
  go build -trimpath -ldflags "-s -w -X github.com/prometheus/common/version.Version=${ksm#v}" \
    -o "$out/bin/kube-state-metrics" k8s.io/kube-state-metrics/v2 >&2
  step "kube-state-metrics $ksm: done"
}

build_helm() {
  [ -n "$helm" ] || return 0
  [ -x "$out/bin/helm" ] && { step "helm $helm: cached"; return; }
  # Helm's main module has no replace directives, so `go install module@version` builds it as
  # released (cold: ~3-5 min on 2 cores; the k8s.io libraries it brings are newer than the engines').
  local major=${helm%%.*}
  step "helm $helm: downloading and compiling"
  GOBIN="$out/bin" go install -trimpath -ldflags "-s -w -X helm.sh/helm/$major/internal/version.version=$helm" \
    "helm.sh/helm/$major/cmd/helm@$helm" >&2
  step "helm $helm: done"
}

build_kwok
build_etcd
build_kubernetes
build_ksm
build_helm
touch "$out/.complete"
