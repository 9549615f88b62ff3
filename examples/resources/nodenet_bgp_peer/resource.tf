# Every node of the cluster peers with the ToR router, with a TCP MD5 password.
variable "tor_password" {
  type      = string
  sensitive = true
}

resource "nodenet_bgp_peer" "tor" {
  cluster  = "demo"
  peer_ip  = "10.20.30.1"
  peer_asn = 64513

  # Write-only (Terraform 1.11): never stored in state. Bump the version to change it.
  password_wo         = var.tor_password
  password_wo_version = 1
}
