#!/usr/bin/env bash
# Builds the programs the Kubernetes tests and the benchmark run, once, into a cache outside
# the clone (default /var/cache/nodenet, or $NODENET_CACHE), and reuses them afterwards:
#   kube-<version>/kube-apiserver, kube-<version>/kubectl  from tools/kube (k8s.io/kubernetes,
#                                                          about 9 minutes the first time)
#   cni-<version>/macvlan, cni-<version>/static           the reference CNI plugins (go install)
# Prints nothing and exits 0 when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${NODENET_CACHE:-/var/cache/nodenet}
kube_version=v1.34.2 # keep in step with tools/kube/go.mod and provider/kube/kubetest
cni_version=v1.9.1   # keep in step with provider/kube/kubetest

kube_dir=$cache/kube-$kube_version
for tool in kube-apiserver kubectl; do
  [ -x "$kube_dir/$tool" ] && continue
  echo "building $tool $kube_version into $kube_dir (once)"
  mkdir -p "$kube_dir"
  (cd tools/kube && go build -trimpath -o "$kube_dir/$tool.tmp" "k8s.io/kubernetes/cmd/$tool")
  mv "$kube_dir/$tool.tmp" "$kube_dir/$tool"
done

cni_dir=$cache/cni-$cni_version
if [ ! -x "$cni_dir/macvlan" ] || [ ! -x "$cni_dir/static" ]; then
  echo "installing CNI plugins macvlan, static $cni_version into $cni_dir (once)"
  mkdir -p "$cni_dir"
  GOBIN=$cni_dir go install \
    "github.com/containernetworking/plugins/plugins/main/macvlan@$cni_version" \
    "github.com/containernetworking/plugins/plugins/ipam/static@$cni_version"
fi
