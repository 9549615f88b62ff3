# A pool of /26 blocks: every node of the cluster gets one (see `allocations` in the plan),
# with a blackhole route for it, announced by the node's speaker.
resource "nodenet_ippool" "pods" {
  cluster    = "demo"
  cidr       = "10.244.0.0/16"
  block_size = 26
  # With BGP, add depends_on = [nodenet_bgp_config.<name>]: the blocks are announced from
  # the start instead of when the speakers come up.
}
