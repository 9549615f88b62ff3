# Two clusters' BGP set-ups from one module: east keeps the node-to-node mesh, west has the
# mesh off and a route reflector. (The provider block, with both clusters' nodes, is the
# pipeline's own.)

terraform {
  required_providers {
    nodenet = { source = "nodenet/nodenet" }
  }
}

module "east" {
  source     = "../../modules/cluster-bgp"
  cluster    = "east"
  asn        = 64512
  pool_cidr  = "10.244.0.0/16"
  block_size = 26
}

module "west" {
  source     = "../../modules/cluster-bgp"
  cluster    = "west"
  asn        = 63400
  pool_cidr  = "10.245.0.0/16"
  block_size = 24
  reflectors = ["west-1"]
}

output "east_blocks" {
  value = module.east.allocations
}

output "west_blocks" {
  value = module.west.allocations
}
