# The multicluster-vxlan set-up (seed 002) built from the clusters' APIs instead of typed
# members: nodes, pod blocks, pod and service CIDRs are read from each cluster; a node that
# joins or leaves a cluster shows in the next plan.
terraform {
  required_providers {
    nodenet = { source = "nodenet/nodenet" }
  }
}

variable "pki" {
  type    = string
  default = "pki"
}

variable "kubeconfigs" {
  description = "Cluster name -> kubeconfig path."
  type        = map(string)
  default = {
    "test-cluster1" = "~/.kube/cluster1"
    "test-cluster2" = "~/.kube/cluster2"
    "test-cluster3" = "~/.kube/cluster3"
  }
}

provider "nodenet" {
  tls = {
    ca_cert     = file("${var.pki}/ca.pem")
    client_cert = file("${var.pki}/client.pem")
    client_key  = file("${var.pki}/client-key.pem")
  }
  clusters = {
    for name, path in var.kubeconfigs : name => {
      kubernetes = { config_path = path }
      # Nodes from the API: the agent of each at its InternalIP, port 7707.
      nodes_from_kubernetes = {}
    }
  }
}

resource "nodenet_cluster_link" "multicluster" {
  name           = "multicluster"
  clusters       = { for name, _ in var.kubeconfigs : name => {} }
  device         = "vxlan-test"
  vni            = 10001
  port           = 4899
  overlay_cidr   = "179.17.1.0/24"
  snat_exemption = "calico"
}

output "overlay_addresses" {
  value = { for k, m in nodenet_cluster_link.multicluster.members : k => m.address }
}
