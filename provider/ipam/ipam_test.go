package ipam

import (
	"net/netip"
	"strings"
	"testing"
)

func TestAllocateStable(t *testing.T) {
	pool := netip.MustParsePrefix("10.244.0.0/24")
	a, err := Allocate(pool, 26, []string{"n2", "n1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a["n1"].String() != "10.244.0.0/26" || a["n2"].String() != "10.244.0.64/26" {
		t.Fatalf("first plan %v", a)
	}
	// n1 leaves, n3 joins: n2 keeps its block, n3 takes the lowest free one (n1's).
	b, err := Allocate(pool, 26, []string{"n2", "n3"}, a)
	if err != nil {
		t.Fatal(err)
	}
	if b["n2"] != a["n2"] || b["n3"].String() != "10.244.0.0/26" {
		t.Fatalf("second plan %v", b)
	}
	// A block of another size or outside the pool is not kept.
	c, _ := Allocate(pool, 26, []string{"n2"}, map[string]netip.Prefix{"n2": netip.MustParsePrefix("10.9.0.0/26")})
	if c["n2"].String() != "10.244.0.0/26" {
		t.Fatalf("foreign block kept: %v", c)
	}
}

func TestAllocateTooSmall(t *testing.T) {
	_, err := Allocate(netip.MustParsePrefix("10.244.0.0/25"), 26, []string{"a", "b", "c"}, nil)
	if err == nil || !strings.Contains(err.Error(), "has 2 blocks of /26 and 3 nodes") {
		t.Fatalf("err %v", err)
	}
	_, err = Allocate(netip.MustParsePrefix("10.244.0.0/16"), 12, []string{"a"}, nil)
	if err == nil || !strings.Contains(err.Error(), "allowed /16 to /32") {
		t.Fatalf("err %v", err)
	}
}
