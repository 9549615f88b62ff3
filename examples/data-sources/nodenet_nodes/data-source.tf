# What the agents report: versions, kernel features, interfaces, managed objects.
data "nodenet_nodes" "cluster1" {
  cluster = "test-cluster1"
}

# Nodes that joined since the last apply and that no resource reaches yet.
output "uncovered_nodes" {
  value = data.nodenet_nodes.cluster1.uncovered
}

# Underlay addresses, e.g. to build a nodenet_vxlan_tunnel's members.
output "eth0_addresses" {
  value = { for key, n in data.nodenet_nodes.cluster1.nodes : key => try(n.interfaces["eth0"].addresses[0], null) }
}
