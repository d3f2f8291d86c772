#!/usr/bin/env bash
# Builds the Go test engines of the sandbox (kube-apiserver, kube-controller-manager,
# kube-scheduler, etcd, kwok and, given a fifth and sixth argument, kube-state-metrics
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

# kube-state-metrics is built in the Kubernetes wrapper module, not in one of its own: there it
# compiles against the same k8s.io libraries (v0.<minor>.<patch>) as the control plane, so the
# packages both use (k8s.io/api, apimachinery, client-go...) are compiled once, not twice at two
# versions (its own module would bring v0.32). Adding it moves no other module the control plane
# uses but go-spew and go-difflib (to the commits Kubernetes itself pinned for years).
build_kubernetes() {
  local bins=(kube-apiserver kube-controller-manager kube-scheduler) b missing=0 ksm_missing=0
  for b in "${bins[@]}"; do [ -x "$out/bin/$b" ] || missing=1; done
  [ -n "$ksm" ] && [ ! -x "$out/bin/kube-state-metrics" ] && ksm_missing=1
  [ $missing = 0 ] && step "kubernetes $k8s: cached"
  [ -n "$ksm" ] && [ $ksm_missing = 0 ] && step "kube-state-metrics $ksm: cached"
  [ $missing = 0 ] && [ $ksm_missing = 0 ] && return
  local work="$cache/work/kubernetes-$k8s"
  rm -rf "$work"; mkdir -p "$work"; cd "$work"
  step "kubernetes $k8s: resolving staging modules"
  local gomod; gomod=$(go mod download -json "k8s.io/kubernetes@$k8s" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  local minor=${k8s#v1.}
  printf 'module kubehub.local/engines\n\ngo 1.24\n\n' > go.mod
  # k8s.io/kubernetes pins its staging modules at v0.0.0 and replaces them with local paths;
  # a wrapper module must point each at its published v0.<minor>.<patch> instead. Not
  # sample-controller: no control-plane binary imports it, kube-state-metrics does, and the
  # proxy does not serve it at v0.34.4 (403), so kube-state-metrics keeps its own version of it.
  grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk '{print $1}' | sort -u | grep -vx 'k8s.io/sample-controller' | while read -r m; do
    printf 'replace %s => %s v0.%s\n' "$m" "$m" "$minor" >> go.mod
  done
  # `go install module@version` asks the proxy for kube-state-metrics's version list, which it
  # refuses (403); `go get` of the exact version in this module works.
  step "kubernetes $k8s${ksm:+ and kube-state-metrics $ksm}: downloading modules (first run only)"
  go get "k8s.io/kubernetes@$k8s" ${ksm:+"k8s.io/kube-state-metrics/v2@$ksm"} >&2
  if [ $missing = 1 ]; then
    step "kubernetes $k8s: compiling ${bins[*]} (cold: ~9 CPU-minutes, 4-5 min on a quiet 2-core machine)"
    local pkgs=() ; for b in "${bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
    go build -trimpath -o "$out/bin/" -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$k8s -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor%%.*}" "${pkgs[@]}" >&2
    step "kubernetes $k8s: done"
  fi
  if [ $ksm_missing = 1 ]; then
    step "kube-state-metrics $ksm: compiling (in the Kubernetes module: its k8s.io libraries are built already)"
    go build -trimpath -ldflags "-s -w -X github.com/prometheus/common/version.Version=${ksm#v}" \
      -o "$out/bin/kube-state-metrics" k8s.io/kube-state-metrics/v2 >&2
    step "kube-state-metrics $ksm: done"
  fi
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
  # kwok only: the sandbox runs the control plane itself (kwokctl's command lines are where its
  # flags came from, docs/sandbox.md), so kwokctl is not built.
  if [ -x "$out/bin/kwok" ] && [ -d "$out/kwok-kustomize" ]; then step "kwok $kwok: cached"; return; fi
  step "kwok $kwok: downloading and compiling"
  GOBIN="$out/bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$kwok" >&2
  # The stage definitions ship inside the module; keep a copy next to the binaries.
  local src="$GOMODCACHE/sigs.k8s.io/kwok@$kwok/kustomize"
  rm -rf "$out/kwok-kustomize"; cp -r "$src" "$out/kwok-kustomize"; chmod -R u+w "$out/kwok-kustomize"
  step "kwok $kwok: done"
}

build_helm() {
  [ -n "$helm" ] || return 0
  [ -x "$out/bin/helm" ] && { step "helm $helm: cached"; return; }
  # Helm's main module has no replace directives, so `go install module@version` builds it as
  # released (cold: ~4.3 CPU-minutes, 2-3 min on a quiet 2-core machine). It cannot join the
  # Kubernetes module as kube-state-metrics does: v4.3.2 requires k8s.io v0.37.2 and
  # controller-runtime v0.25, three minors above the control plane's v0.34, so nothing would be
  # shared without forcing one side onto libraries it was not released with. Only the chart tests
  # run it, so sandbox/prereqs.py builds it after the sandbox's engines (ensure_helm).
  local major=${helm%%.*}
  step "helm $helm: downloading and compiling"
  # Installed beside and renamed into place: a test finding bin/helm finds a whole binary.
  rm -rf "$out/bin/.helm-new"
  GOBIN="$out/bin/.helm-new" go install -trimpath -ldflags "-s -w -X helm.sh/helm/$major/internal/version.version=$helm" \
    "helm.sh/helm/$major/cmd/helm@$helm" >&2
  mv "$out/bin/.helm-new/helm" "$out/bin/helm"; rmdir "$out/bin/.helm-new"
  step "helm $helm: done"
}

build_kwok
build_etcd
build_kubernetes
build_helm
touch "$out/.complete"
