# The multicluster-vxlan reference set-up: three clusters of two nodes joined by one VXLAN
# overlay (device vxlan-test, VNI 10001, port 4899, overlay 179.17.1.0/24), with every node's
# pod block routed through it, so a pod in one cluster reaches pods in the others without SNAT.
# The provider block (agents, TLS) comes from the lab: `nodenet-agent lab up` writes provider.tf.

terraform {
  required_providers {
    nodenet = { source = "nodenet/nodenet" }
  }
}

locals {
  nodes = {
    "test-cluster1/multicluster-test-001" = { overlay = "179.17.1.21", mac = "c2:6a:9b:e5:39:8d", pods = "10.234.111.0/24" }
    "test-cluster1/multicluster-test-002" = { overlay = "179.17.1.31", mac = "7a:3a:fe:45:a3:76", pods = "10.234.118.0/24" }
    "test-cluster2/multicluster-test-003" = { overlay = "179.17.1.16", mac = "36:f9:67:c0:70:1c", pods = "10.235.88.0/24" }
    "test-cluster2/multicluster-test-004" = { overlay = "179.17.1.44", mac = "12:d1:df:44:3d:aa", pods = "10.235.113.0/24" }
    "test-cluster3/multicluster-test-005" = { overlay = "179.17.1.15", mac = "ba:a7:54:aa:bc:ce", pods = "10.236.115.0/24" }
    "test-cluster3/multicluster-test-006" = { overlay = "179.17.1.13", mac = "4e:ac:f5:6f:4e:76", pods = "10.236.106.0/24" }
  }
}

resource "nodenet_vxlan_tunnel" "multicluster" {
  name = "vxlan-test"
  vni  = 10001
  port = 4899

  members = {
    for key, n in local.nodes : key => { underlay = "eth0", address = "${n.overlay}/24", mac = n.mac }
  }
  routes = {
    for key, n in local.nodes : n.pods => { via = key }
  }
}

output "pod_routes_on_001" {
  value = nodenet_vxlan_tunnel.multicluster.members["test-cluster1/multicluster-test-001"].routes
}
