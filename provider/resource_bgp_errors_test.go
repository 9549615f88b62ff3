package provider

import (
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
)

// TestAccBGPBadInput: every bad value is a plan-time error naming the attribute and what is
// allowed. The lab's agents run in-process, where no BGP speaker can run (its sockets would
// open in the test's own namespace): that is reported at plan time too.
func TestAccBGPBadInput(t *testing.T) {
	l := newLab(t, lab.Options{Hosts: []lab.HostSpec{
		{Cluster: "demo", Name: "node1", UnderlayIP: mustPrefix("10.20.30.30/24")},
		{Cluster: "demo", Name: "node2", UnderlayIP: mustPrefix("10.20.30.31/24")},
	}})
	p := l.ProviderHCL()
	step := func(hcl, want string) resource.TestStep {
		return resource.TestStep{Config: p + hcl, PlanOnly: true, ExpectError: regexp.MustCompile(want)}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			step(`resource "nodenet_bgp_config" "c" {
  cluster = "demo"
  asn     = 0
}`, `(?s)asn.*ASN 0 is out of range; allowed 1 to 4294967294`),
			step(`resource "nodenet_bgp_config" "c" {
  cluster = "demo"
  asn     = 4294967296
}`, `(?s)asn.*out of range`),
			step(`resource "nodenet_route_reflector" "rr" {
  cluster    = "demo"
  node       = "node1"
  asn        = 64512
  cluster_id = "rr-1"
}`, `(?s)cluster_id.*not an IPv4 address`),
			step(`resource "nodenet_ippool" "p" {
  cluster    = "demo"
  cidr       = "10.244.0.0/16"
  block_size = 12
}`, `(?s)block_size.*allowed 16 to 32`),
			step(`resource "nodenet_ippool" "p" {
  cluster    = "demo"
  cidr       = "10.244.0.0/16"
  block_size = 33
}`, `(?s)block_size.*between 1 and 32`),
			step(`resource "nodenet_ippool" "a" {
  cluster = "demo"
  cidr    = "10.244.0.0/16"
}
resource "nodenet_ippool" "b" {
  cluster = "demo"
  cidr    = "10.244.128.0/17"
}`, `(?s)Overlapping pools.*overlaps pool 10.244.(0.0/16|128.0/17)`),
			step(`resource "nodenet_ippool" "p" {
  cluster    = "demo"
  cidr       = "10.244.0.0/26"
  block_size = 27
  nodes      = ["node1", "node2", "node3"]
}`, `(?s)nodes.*node "node3" is not in cluster "demo"`),
			step(`resource "nodenet_ippool" "p" {
  cluster    = "demo"
  cidr       = "10.244.0.0/26"
  block_size = 27
}
resource "nodenet_ippool" "q" {
  cluster    = "demo"
  cidr       = "10.245.0.0/27"
  block_size = 28
  nodes      = ["node1", "node2"]
}
resource "nodenet_ippool" "r" {
  cluster    = "demo"
  cidr       = "10.246.0.0/28"
  block_size = 28
}`, `(?s)Pool too small.*10.246.0.0/28 has 1 blocks of /28 and 2 nodes need one each`),
			step(`resource "nodenet_bgp_peer" "tor" {
  cluster  = "demo"
  peer_ip  = "10.20.30.300"
  peer_asn = 64513
}`, `(?s)peer_ip.*not an IPv4 address`),
			step(`resource "nodenet_bgp_peer" "tor" {
  cluster     = "demo"
  peer_ip     = "10.20.30.1"
  peer_asn    = 64513
  password_wo = "secret"
}`, `(?s)Missing password version.*password_wo`),
			step(`resource "nodenet_bgp_peer" "tor" {
  cluster  = "demo"
  nodes    = ["node9"]
  peer_ip  = "10.20.30.1"
  peer_asn = 64513
}`, `(?s)nodes.*node "node9" is not in cluster "demo"`),
			step(`resource "nodenet_route_reflector" "rr" {
  cluster = "demo"
  node    = "node7"
  asn     = 64512
}`, `(?s)node.*node "node7" is not in cluster "demo"`),
			step(`resource "nodenet_bgp_config" "c" {
  cluster = "demo"
  asn     = 64512
}`, `(?s)BGP speakers cannot run.*demo/node1.*cannot run a BGP\s+speaker`),
		},
	})
}
