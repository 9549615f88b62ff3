package main

import (
	"bytes"
	"strings"
	"testing"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// TestStatusShowsFindings: status prints interrupted applies, failed replays and the
// nodenet-marked kernel entries no object explains, with what to do about them.
func TestStatusShowsFindings(t *testing.T) {
	var b bytes.Buffer
	printFindings(&b, &pb.NodeInfo{
		Problems: []*pb.ObjectProblem{{Id: "vxlan_tunnel/vxm", Problem: "interrupted", Detail: "the next apply finishes it, a delete removes it"}},
		Unexplained: []*pb.KernelEntry{
			{Entry: "link", Key: "vxo", Detail: "ifalias nodenet:vxlan_tunnel/vxo", ObjectId: "vxlan_tunnel/vxo"},
			{Entry: "route", Key: "10.2.0.0/24", Detail: "dev eth0 proto 147"},
		},
	})
	for _, want := range []string{
		"problems: 1\n  vxlan_tunnel/vxm: interrupted: the next apply finishes it, a delete removes it",
		"unexplained kernel entries (nodenet's marks, no managed object): 2",
		"  link vxo ifalias nodenet:vxlan_tunnel/vxo (names vxlan_tunnel/vxo: an apply of it takes it over, a delete of it removes it)",
		"  route 10.2.0.0/24 dev eth0 proto 147\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	printFindings(&b, &pb.NodeInfo{})
	if b.Len() != 0 {
		t.Errorf("nothing to report, but printed %q", b.String())
	}
}
