# A macvlan second network with whereabouts IPAM; the plan checks that eth1 exists on every
# node of cluster1 and that their kernels have macvlan.
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

# Any other plugin as a raw CNI configuration, compared as JSON.
resource "nodenet_network_attachment" "ovn" {
  cluster   = "cluster1"
  namespace = "default"
  name      = "yusur-ovn"
  config = jsonencode({
    cniVersion = "0.4.0"
    name       = "ovn-kubernetes"
    type       = "ovn-k8s-cni-overlay"
    ipam       = {}
    dns        = {}
  })
  pod_interface     = "eth1"
  pod_default_route = ["10.144.0.1"]
}

# A pod attached to both: metadata.annotations["k8s.v1.cni.cncf.io/networks"].
output "pod_annotation" {
  value = nodenet_network_attachment.macvlan.pod_annotation
}
