# bgp-demo (seed 004, a Calico BIRD demo redone): two nodes, AS 64512, node-to-node mesh; each
# node's block of the pool gets a blackhole route and is announced; each node learns the
# other's block via its address, so a pod on node1 reaches a pod on node2.

terraform {
  required_providers {
    nodenet = { source = "nodenet/nodenet" }
  }
}

resource "nodenet_bgp_config" "demo" {
  cluster = "demo"
  asn     = 64512
}

resource "nodenet_ippool" "pods" {
  cluster    = "demo"
  cidr       = "10.244.0.0/16"
  block_size = 26
  depends_on = [nodenet_bgp_config.demo]
}
