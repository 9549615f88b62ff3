#!/usr/bin/env bash
# Installs the Debian packages the lab, the tests and the generators use, when missing:
# iproute2 (ip, bridge), iputils-ping, net-tools (the seed's arp and route commands),
# protobuf-compiler (make generate), strace (a test delays the agent's netlink calls with it),
# bird2 (BIRD 2, the independent BGP peer of the lab's tests), nftables (nft: the NAT table's
# tests make drift by hand and read the ruleset as an operator does; the benchmark's nft -f).
# Needs root; no-op when all are there.
set -euo pipefail
need=()
for p in iproute2 iputils-ping net-tools protobuf-compiler strace bird2 nftables; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
# The Kubernetes tests: etcd under the kube-apiserver they start (hack/kube-bins.sh builds
# kube-apiserver, kubectl and the CNI plugins into a cache outside the clone).
for p in etcd-server; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages: ${need[*]} (run as root, or apt-get install them)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
echo "installed: ${need[*]}"
