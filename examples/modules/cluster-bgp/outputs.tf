output "allocations" {
  description = "Node name -> its block of the pool."
  value       = nodenet_ippool.pods.allocations
}

output "speakers" {
  description = "Node name -> its speaker's router id and state."
  value       = nodenet_bgp_config.this.speakers
}

output "reflectors" {
  description = "Reflector node -> its cluster id."
  value       = { for k, r in nodenet_route_reflector.this : k => r.cluster_id }
}
