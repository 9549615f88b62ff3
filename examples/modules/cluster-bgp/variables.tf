variable "cluster" {
  description = "The cluster: a key of the nodenet provider's clusters."
  type        = string
}

variable "asn" {
  description = "The cluster's AS number."
  type        = number
}

variable "pool_cidr" {
  description = "The pod pool, like 10.244.0.0/16."
  type        = string
}

variable "block_size" {
  description = "Prefix length of each node's block."
  type        = number
  default     = 26
}

variable "reflectors" {
  description = "Nodes to make route reflectors. With any, the node-to-node mesh is turned off."
  type        = set(string)
  default     = []
}

variable "tor_peers" {
  description = "Routers every node peers with, by IP: their AS, and an optional TCP MD5 password with its version."
  type = map(object({
    asn              = number
    password_version = optional(number)
  }))
  default = {}
}

variable "tor_passwords" {
  description = "TCP MD5 passwords of the tor_peers, by IP (kept apart so they stay sensitive)."
  type        = map(string)
  default     = {}
  sensitive   = true
}
