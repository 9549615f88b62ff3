# Whether every node of one cluster reaches every node of the others over the link's overlay,
# as the agents measure it (ICMP echo through the device, once a second).
data "nodenet_cluster_link_status" "multicluster" {
  name = "multicluster"
}

output "unreachable_pairs" {
  value = [for pair, s in data.nodenet_cluster_link_status.multicluster.pairs : pair if !s.reachable]
}
