# tor-peer (seed 001): the bgp-demo nodes peer with their ToR router (AS 64513) with a TCP MD5
# password; the ToR learns every pod block and announces the office network back.

terraform {
  required_providers {
    nodenet = { source = "nodenet/nodenet" }
  }
}

variable "tor_password" {
  type      = string
  sensitive = true
}

resource "nodenet_bgp_config" "demo" {
  cluster = "demo"
  asn     = 64512
}

resource "nodenet_ippool" "pods" {
  cluster    = "demo"
  cidr       = "10.244.0.0/16"
  block_size = 26
  depends_on = [nodenet_bgp_config.demo]
}

resource "nodenet_bgp_peer" "tor" {
  cluster             = "demo"
  peer_ip             = "10.20.30.1"
  peer_asn            = 64513
  password_wo         = var.tor_password
  password_wo_version = 1
  # The ToR keeps the nodes' routes for a minute while an agent restarts.
  graceful_restart = {
    enabled      = true
    restart_time = 60
  }
  depends_on = [nodenet_bgp_config.demo]
}
