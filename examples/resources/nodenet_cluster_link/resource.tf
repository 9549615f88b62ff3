# The write-up's three clusters joined: a VXLAN device on every node of every cluster, and on
# every node a route to every other cluster's node blocks. Each cluster's pod CIDR, service
# CIDR and node blocks come from its API (the provider's clusters need `kubernetes` access);
# the clusters' Calico keeps the other clusters' traffic unmasqueraded through disabled,
# natOutgoing=false IPPools that the link makes in every cluster.
resource "nodenet_cluster_link" "multicluster" {
  name           = "multicluster"
  clusters       = { "test-cluster1" = {}, "test-cluster2" = {}, "test-cluster3" = {} }
  device         = "vxlan-test"
  vni            = 10001
  port           = 4899
  overlay_cidr   = "179.17.1.0/24"
  snat_exemption = "calico"
}

# Without Kubernetes access: CIDRs and blocks given (the seed's values).
resource "nodenet_cluster_link" "static" {
  name = "static"
  clusters = {
    "test-cluster1" = {
      pod_cidr     = "10.234.64.0/18"
      service_cidr = "10.234.0.0/18"
      blocks_from  = "static"
      blocks = {
        "multicluster-test-001" = ["10.234.111.0/24"]
        "multicluster-test-002" = ["10.234.118.0/24"]
      }
    }
    "test-cluster2" = {
      pod_cidr     = "10.235.64.0/18"
      service_cidr = "10.235.0.0/18"
      blocks_from  = "static"
      blocks = {
        "multicluster-test-003" = ["10.235.88.0/24"]
        "multicluster-test-004" = ["10.235.113.0/24"]
      }
    }
  }
  device       = "vxlan-static"
  vni          = 10002
  overlay_cidr = "179.18.1.0/24"
}
