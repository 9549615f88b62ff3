# The multus-macvlan reference set-up: pods get a second interface through Multus.
# - macvlan-conf-1: macvlan on the nodes' eth1, mode bridge, whereabouts IPAM
#   192.168.60.0/24 (range .20-.50, gateway .1), checked at plan time on every node of cluster1
#   (eth1 must exist, the kernel must have macvlan).
# - yusur-ovn: an OVN-Kubernetes second network as a raw CNI configuration.
# The pod annotations that attach a pod to each are outputs.
# The provider block (agents, TLS, the cluster's kubernetes access) comes from the lab.

terraform {
  required_providers {
    nodenet = { source = "nodenet/nodenet" }
  }
}

resource "nodenet_network_attachment" "macvlan" {
  cluster   = "cluster1"
  namespace = "default"
  name      = "macvlan-conf-1"

  macvlan = {
    master = "eth1"
    mode   = "bridge"
  }
  ipam = {
    whereabouts = {
      range       = "192.168.60.0/24"
      range_start = "192.168.60.20"
      range_end   = "192.168.60.50"
      gateway     = "192.168.60.1"
    }
  }
  pod_interface = "eth1"
}

resource "nodenet_network_attachment" "ovn" {
  cluster   = "cluster1"
  namespace = "default"
  name      = "yusur-ovn"

  config = jsonencode({
    cniVersion           = "0.4.0"
    name                 = "ovn-kubernetes"
    type                 = "ovn-k8s-cni-overlay"
    ipam                 = {}
    dns                  = {}
    logFile              = "/var/log/ovn-kubernetes/ovn-k8s-cni-overlay.log"
    logLevel             = "5"
    "logfile-maxsize"    = 100
    "logfile-maxbackups" = 5
    "logfile-maxage"     = 5
  })
  pod_interface     = "eth1"
  pod_default_route = ["10.144.0.1"]
}

output "macvlan_pod_annotation" {
  value = nodenet_network_attachment.macvlan.pod_annotation
}

output "ovn_pod_annotation" {
  value = nodenet_network_attachment.ovn.pod_annotation
}
