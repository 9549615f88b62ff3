# A pool of /26 blocks: every node of the cluster gets one (see `allocations` in the plan),
# with a blackhole route for it, announced by the node's speaker.
resource "nodenet_ippool" "pods" {
  cluster    = "demo"
  cidr       = "10.244.0.0/16"
  block_size = 26
  # With BGP, add depends_on = [nodenet_bgp_config.<name>]: the blocks are announced from
  # the start instead of when the speakers come up.
}

# Calico's IPPool with natOutgoing and vxlanMode CrossSubnet, without BGP: pod traffic to
# nodes in another underlay subnet goes through a VXLAN device, to nodes of the same subnet
# directly; pod traffic leaving every pool is masqueraded; each node's agent writes the CNI
# configuration of its block (ptp + host-local) into its --cni-conf-dir.
resource "nodenet_ippool" "overlay" {
  cluster            = "demo"
  cidr               = "10.245.0.0/16"
  nat_outgoing       = true
  encapsulation      = "vxlan"
  encapsulation_mode = "cross_subnet"
  cni                = {}
}

# Another cluster's pod CIDR, as the multi-cluster write-up adds it: disabled (no node gets
# a block), it only keeps traffic to that CIDR from being masqueraded.
resource "nodenet_ippool" "cluster2_pods" {
  cluster  = "demo"
  cidr     = "10.235.64.0/18"
  disabled = true
}
