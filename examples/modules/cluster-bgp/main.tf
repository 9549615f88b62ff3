# One cluster's BGP set-up, as the seeds' operators make it by hand with calicoctl: a speaker
# on every node, a pool whose blocks the nodes announce, optional route reflectors (which
# turn the mesh off) and optional ToR peers.

resource "nodenet_bgp_config" "this" {
  cluster           = var.cluster
  asn               = var.asn
  node_to_node_mesh = length(var.reflectors) == 0
}

resource "nodenet_ippool" "pods" {
  cluster    = var.cluster
  cidr       = var.pool_cidr
  block_size = var.block_size
  depends_on = [nodenet_bgp_config.this]
}

resource "nodenet_route_reflector" "this" {
  for_each = var.reflectors
  cluster  = var.cluster
  node     = each.value
  asn      = nodenet_bgp_config.this.asn
}

resource "nodenet_bgp_peer" "tor" {
  for_each            = var.tor_peers
  cluster             = var.cluster
  peer_ip             = each.key
  peer_asn            = each.value.asn
  password_wo         = lookup(var.tor_passwords, each.key, null)
  password_wo_version = each.value.password_version
  depends_on          = [nodenet_bgp_config.this]
}
