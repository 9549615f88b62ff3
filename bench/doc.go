// Package bench holds nodenet's end-to-end benchmarks. BenchmarkVxlanMesh: VXLAN meshes of
// lab nodes set up by terraform apply, by one ip/bridge command per entry, by ip/bridge
// -batch, and by the agents driven from the provider's fan-out client. BenchmarkBGP: a new
// pod block's route reaching every other node's kernel, nodenet's agents against BIRD 2
// configured as Calico does, and 10,000 learned routes programmed by an agent against ip
// -batch. BenchmarkNetworkAttachments writes Multus NetworkAttachmentDefinitions to a real
// kube-apiserver by terraform and by kubectl. BenchmarkNAT sets the NAT table of 200 IP
// pools up, and updates it by one pool, with nodeagent/nat against nft -f. BenchmarkClusterLink
// joins three clusters of lab nodes by a nodenet_cluster_link: terraform apply and the no-op
// plan against the seed's commands for the same entries and ip/bridge -batch. They need root,
// terraform and bird2 (and hack/kube-bins.sh's programs for the attachments, nft for the
// NAT table); run them with `make bench` (hack/bench.sh).
// The package has no other code.
package bench
