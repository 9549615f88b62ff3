# The calico-rr set-up: the mesh off, master01 reflects the routes of every other node.
resource "nodenet_bgp_config" "calico" {
  cluster           = "calico"
  asn               = 63400
  node_to_node_mesh = false
}

resource "nodenet_route_reflector" "master01" {
  cluster = "calico"
  node    = "master01"
  asn     = nodenet_bgp_config.calico.asn
  # cluster_id defaults to master01's address; clients to every other node.
}
