terraform {
  required_version = ">= 1.11"
  required_providers {
    nodenet = { source = "nodenet/nodenet" }
  }
}
