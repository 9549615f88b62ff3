# calico-rr (seeds 000 and 001): master01, work01, work02 in AS 63400; the mesh off and
# master01 a route reflector (cluster id: its address), so each worker has one session;
# pool 10.244.0.0/16 in /24 blocks, no encapsulation. Applied over a running mesh, this is
# the seed's calicoctl procedure without its outage.

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
