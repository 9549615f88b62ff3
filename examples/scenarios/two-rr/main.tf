# two-rr: calico-rr with a second reflector, master02. Every worker peers with both; the
# reflectors peer with each other; either one can stop and pod traffic still flows.

terraform {
  required_providers {
    nodenet = { source = "nodenet/nodenet" }
  }
}

resource "nodenet_bgp_config" "calico" {
  cluster           = "calico"
  asn               = 63400
  node_to_node_mesh = false
}

resource "nodenet_ippool" "pods" {
  cluster    = "calico"
  cidr       = "10.244.0.0/16"
  block_size = 24
  depends_on = [nodenet_bgp_config.calico]
}

resource "nodenet_route_reflector" "master01" {
  cluster = "calico"
  node    = "master01"
  asn     = nodenet_bgp_config.calico.asn
}

resource "nodenet_route_reflector" "master02" {
  cluster = "calico"
  node    = "master02"
  asn     = nodenet_bgp_config.calico.asn
}
