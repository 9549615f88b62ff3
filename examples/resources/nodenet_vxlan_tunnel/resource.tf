# Joins the pod networks of two clusters over VXLAN: the hand-made `ip link add vxlan-test
# type vxlan id 10001 dstport 4899 ... nolearning`, `arp -s`, `bridge fdb append` and
# `route add -net ... gw ...` on every node, as one reviewable resource.
resource "nodenet_vxlan_tunnel" "multicluster" {
  name = "vxlan-test"
  vni  = 10001
  port = 4899

  members = {
    "test-cluster1/multicluster-test-001" = { underlay = "eth0", address = "179.17.1.21/24", mac = "c2:6a:9b:e5:39:8d" }
    "test-cluster1/multicluster-test-002" = { underlay = "eth0", address = "179.17.1.31/24" } # MAC derived, stable
    "test-cluster2/multicluster-test-003" = { underlay = "192.168.0.16", address = "179.17.1.16/24" }
  }

  # Each node's pod block, through the tunnel, installed on every member outside the via
  # member's cluster (every other member when all are in one cluster), unless `on` lists them.
  routes = {
    "10.234.111.0/24" = { via = "test-cluster1/multicluster-test-001" }
    "10.234.118.0/24" = { via = "test-cluster1/multicluster-test-002" }
    "10.235.88.0/24"  = { via = "test-cluster2/multicluster-test-003" }
  }
}

# Per node, what the kernel really has (read back by the agents):
output "fdb_on_001" {
  value = nodenet_vxlan_tunnel.multicluster.members["test-cluster1/multicluster-test-001"].fdb
}
