#!/usr/bin/env bash
# Builds the programs the Kubernetes tests and the benchmark run, once, into a cache outside
# the clone (default /var/cache/nodenet, or $NODENET_CACHE), and reuses them afterwards:
#   kube-<version>/kube-apiserver, kube-<version>/kubectl  from tools/kube (k8s.io/kubernetes,
#                                                          about 9 minutes the first time)
#   cni-<version>/macvlan, static, ptp, host-local         the reference CNI plugins (go install)
# Prints nothing and exits 0 when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${NODENET_CACHE:-/var/cache/nodenet}
kube_version=v1.34.2 # keep in step with tools/kube/go.mod and internal/testbin
cni_version=v1.9.1   # keep in step with internal/testbin

kube_dir=$cache/kube-$kube_version
for tool in kube-apiserver kubectl; do
  [ -x "$kube_dir/$tool" ] && continue
  echo "building $tool $kube_version into $kube_dir (once)"
  mkdir -p "$kube_dir"
  (cd tools/kube && go build -trimpath -o "$kube_dir/$tool.tmp" "k8s.io/kubernetes/cmd/$tool")
  mv "$kube_dir/$tool.tmp" "$kube_dir/$tool"
done

cni_dir=$cache/cni-$cni_version
cni_plugins=(main/macvlan ipam/static main/ptp ipam/host-local)
missing=() names=()
for p in "${cni_plugins[@]}"; do
  [ -x "$cni_dir/${p#*/}" ] && continue
  missing+=("github.com/containernetworking/plugins/plugins/$p@$cni_version")
  names+=("${p#*/}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing CNI plugins ${names[*]} $cni_version into $cni_dir (once)"
  mkdir -p "$cni_dir"
  GOBIN=$cni_dir go install "${missing[@]}"
fi
