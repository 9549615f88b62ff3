#!/usr/bin/env bash
# make bench: VXLAN meshes of 20 and 50 lab nodes (network namespaces, one in-process agent
# per node) set up four ways: terraform apply, one ip/bridge command per entry, ip/bridge
# -batch, and the agents driven by the provider's fan-out client; plus the no-op plan after
# the apply. Prints a table per size. Extra arguments go to `go test` (e.g. -cpuprofile
# cpu.out). NODENET_BENCH_SIZES=20,50 picks the sizes; NODENET_BENCH_OUT=file also writes
# the tables there.
# It also writes 200 Multus NetworkAttachmentDefinitions to a real kube-apiserver three ways
# (terraform apply, kubectl apply per manifest, one kubectl apply -f; NODENET_BENCH_NADS=n
# picks the count); that part needs hack/kube-bins.sh's programs and skips without them.
#
# Then BGP (BenchmarkBGP, issue 6): a new block on one node -> its route in every other
# node's kernel, nodenet's agents against BIRD 2 configured as Calico does, mesh and route
# reflector, for 2 and 20 lab nodes; 10,000 learned routes into one agent's kernel (20
# sessions, and 1) against ip -batch and against BIRD 2 receiving them; the agent's memory.
# NODENET_BGP_BENCH_PCAP=file captures the route peer's BGP traffic meanwhile;
# NODENET_BGP_BENCH_PERF=file records node-001's agent with perf while it programs the
# routes, NODENET_BGP_BENCH_PERF_CONV=dir the whole machine while each convergence run adds
# its blocks (a file per run). NODENET_BGP_BENCH_SIZES=2,20 picks the sizes,
# NODENET_BGP_BENCH_BLOCKS (30) the blocks per run, NODENET_BGP_BENCH_ROUTES (10000) the
# routes and NODENET_BGP_BENCH_PEERS (20) the sessions of the node learning them;
# NODENET_BGP_BENCH_AGENT=file runs that nodenet-agent binary instead of building one.
# `./hack/bench.sh -bench BGP` runs only that one.
#
# Then the NAT table (BenchmarkNAT, nodeagent/nat): N IP pools from empty and one pool added
# and removed, nodenet's table through netlink against `nft -f` of the same ruleset, in
# throwaway namespaces; both ways must end with the same table. NODENET_NAT_BENCH_POOLS (200)
# picks N; `./hack/bench.sh -bench NAT` runs only that one (it needs nft: make deps).
#
# Then the cluster link (BenchmarkClusterLink, issue "Multi-cluster pod networks", point 6):
# three clusters of 20 lab nodes joined by a nodenet_cluster_link (blocks given, so no API
# server), terraform apply from empty and the no-op plan after it, against the seed's
# commands for the same entries (one ip/bridge process each) and ip/bridge -batch per node;
# every way is checked on every node. NODENET_LINK_BENCH_NODES=20 picks the nodes per
# cluster (2 to 64); `./hack/bench.sh -bench ClusterLink` runs only that one (about 45 s).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make bench needs root (network namespaces)" >&2; exit 1; }
command -v terraform >/dev/null || { echo "make bench needs terraform on PATH" >&2; exit 1; }
command -v bird >/dev/null || { echo "make bench needs BIRD 2 (make deps installs bird2)" >&2; exit 1; }
exec go test ./bench/ -run '^$' -bench . -benchtime 1x -timeout 40m -v "$@"
