// Package bench holds nodenet's end-to-end benchmark (BenchmarkVxlanMesh): VXLAN meshes of
// lab nodes set up by terraform apply, by one ip/bridge command per entry, by ip/bridge
// -batch, and by the agents driven from the provider's fan-out client. It needs root and
// terraform; run it with `make bench` (hack/bench.sh). BenchmarkNetworkAttachments writes
// Multus NetworkAttachmentDefinitions to a real kube-apiserver by terraform and by kubectl.
// The package has no other code.
package bench
