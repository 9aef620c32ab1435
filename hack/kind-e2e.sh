#!/usr/bin/env bash
# Bring up (or tear down) the kind cluster the end-to-end tests run on.
#
#   hack/kind-e2e.sh up    create the cluster from kind/cluster.yaml (if absent), build and load
#                          the images, install KubeRay 1.7.0 and our chart with helm, fill the
#                          `rag-data` volume the CPU example mounts. Idempotent.
#   hack/kind-e2e.sh down  delete the cluster.
#
# Needs a Docker engine, kind, helm and kubectl (HELM, KUBECTL, KIND override the binaries).
# SKIP_BUILD=1 reuses images already in the local Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${KIND_CLUSTER:-rag-e2e}
CONTEXT=kind-$CLUSTER
HELM=${HELM:-helm}
KUBECTL=${KUBECTL:-kubectl}
KIND=${KIND:-kind}
KUBERAY_VERSION=1.7.0
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
OPERATOR_IMAGE=${OPERATOR_IMAGE:-ghcr.io/rag-finetune/rag-finetune-operator:$VERSION}
JOB_IMAGE_CPU=${JOB_IMAGE_CPU:-ghcr.io/rag-finetune/rag-job:$VERSION-cpu}

log() { echo "kind-e2e [$(date -u +%H:%M:%S)] $*"; }

need() {
  if ! docker info >/dev/null 2>&1; then
    echo "kind-e2e: no Docker engine answers ('docker info' failed); kind needs one" >&2; exit 1
  fi
  for bin in "$KIND" "$HELM" "$KUBECTL"; do
    if ! command -v "$bin" >/dev/null 2>&1; then
      echo "kind-e2e: '$bin' not found (make tools / make tools-kind install pinned ones)" >&2; exit 1
    fi
  done
}

up() {
  need
  local start=$SECONDS
  if "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "cluster $CLUSTER exists"
  else
    log "creating cluster $CLUSTER from kind/cluster.yaml"
    "$KIND" create cluster --name "$CLUSTER" --config kind/cluster.yaml --wait 180s
  fi
  if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building $OPERATOR_IMAGE and $JOB_IMAGE_CPU"
    make --no-print-directory image-operator image-job-cpu
  fi
  log "loading images into $CLUSTER"
  "$KIND" load docker-image --name "$CLUSTER" "$OPERATOR_IMAGE" "$JOB_IMAGE_CPU"

  log "installing KubeRay $KUBERAY_VERSION"
  "$HELM" repo add kuberay https://ray-project.github.io/kuberay-helm/ --force-update >/dev/null
  "$HELM" upgrade --install kuberay-operator kuberay/kuberay-operator --version "$KUBERAY_VERSION" \
    --kube-context "$CONTEXT" --namespace ray-system --create-namespace --wait --timeout 5m

  log "installing charts/rag-finetune-operator"
  "$HELM" upgrade --install rag-finetune-operator charts/rag-finetune-operator \
    --kube-context "$CONTEXT" --namespace rag-system --create-namespace \
    --values kind/values-e2e.yaml --set image.tag="$VERSION" --wait --timeout 5m

  log "filling the rag-data volume (tiny model, knowledge base, index)"
  "$KUBECTL" --context "$CONTEXT" apply -f kind/rag-data.yaml
  if ! "$KUBECTL" --context "$CONTEXT" wait --for=condition=complete job/rag-data-prepare --timeout=15m; then
    "$KUBECTL" --context "$CONTEXT" logs job/rag-data-prepare --tail=100 || true
    exit 1
  fi
  log "ready in $((SECONDS - start)) s (kubectl --context $CONTEXT)"
}

down() {
  if ! command -v "$KIND" >/dev/null 2>&1; then echo "kind-e2e: '$KIND' not found: nothing to delete"; return; fi
  if ! docker info >/dev/null 2>&1; then echo "kind-e2e: no Docker engine answers: no kind cluster to delete"; return; fi
  "$KIND" delete cluster --name "$CLUSTER"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
