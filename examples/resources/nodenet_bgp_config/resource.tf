# The seed's bgp-demo: a speaker on every node of the cluster, AS 64512, node-to-node mesh.
resource "nodenet_bgp_config" "demo" {
  cluster = "demo"
  asn     = 64512

  # Defaults shown: mesh on, port 179, graceful restart 120 s, keepalive 3 s, hold 9 s.
  node_to_node_mesh = true
  graceful_restart = {
    enabled      = true
    restart_time = 120
  }
}
