# Every node's BGP sessions, as calicoctl node status shows one node's.
data "nodenet_bgp_status" "demo" {
  cluster = "demo"
}

# Sessions that are not Established: empty when the cluster's BGP is healthy.
output "bgp_sessions_down" {
  value = flatten([
    for key, s in data.nodenet_bgp_status.demo.speakers : [
      for p in s.peers : "${key}: ${p.address} (${p.type}) ${p.state} since ${p.since}" if p.state != "Established"
    ]
  ])
}

# Nodes whose agent did not answer, with the reason.
output "bgp_unanswered" {
  value = { for key, s in data.nodenet_bgp_status.demo.speakers : key => s.error if s.error != "" }
}
