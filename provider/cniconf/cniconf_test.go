package cniconf

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/utils"
)

// The text a node with block 10.244.0.64/26 gets, byte for byte: the plan shows it and the
// agent writes it.
const want64 = `{
  "cniVersion": "1.0.0",
  "name": "nodenet",
  "plugins": [
    {
      "type": "ptp",
      "mtu": 1450,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [
          [
            {
              "subnet": "10.244.0.64/26",
              "gateway": "10.244.0.65"
            }
          ]
        ],
        "routes": [
          {
            "dst": "0.0.0.0/0"
          }
        ]
      }
    }
  ]
}
`

func TestRenderText(t *testing.T) {
	c := Config{Network: "nodenet", Block: netip.MustParsePrefix("10.244.0.64/26"), MTU: 1450}
	got, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	if got != want64 {
		t.Fatalf("rendered:\n%s\nwant:\n%s", got, want64)
	}
	for range 20 { // map-free structs: the same input gives the same bytes every time
		if again, _ := Render(c); again != got {
			t.Fatalf("second render differs:\n%s", again)
		}
	}
	c.DataDir = "/var/lib/nodenet/cni & <ipam>"
	got, err = Render(c)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(want64, `"dst": "0.0.0.0/0"
          }
        ]`, `"dst": "0.0.0.0/0"
          }
        ],
        "dataDir": "/var/lib/nodenet/cni & <ipam>"`, 1)
	if got != want {
		t.Fatalf("with a data dir:\n%s\nwant:\n%s", got, want)
	}
}

// TestRenderParses: what libcni, the runtimes' library, reads from the text, and what the
// plugins get on stdin.
func TestRenderParses(t *testing.T) {
	for _, tc := range []struct {
		block, gateway, dst string
		mtu                 int
	}{
		{"10.244.0.64/26", "10.244.0.65", "0.0.0.0/0", 1450},
		{"10.245.8.0/30", "10.245.8.1", "0.0.0.0/0", 0},
		{"fd00:10:244::/122", "fd00:10:244::1", "::/0", 1430},
	} {
		text, err := Render(Config{Network: "pool-a.v1", Block: netip.MustParsePrefix(tc.block), MTU: tc.mtu, DataDir: "/run/ipam"})
		if err != nil {
			t.Fatalf("%s: %v", tc.block, err)
		}
		list, err := libcni.NetworkConfFromBytes([]byte(text))
		if err != nil {
			t.Fatalf("%s: libcni: %v", tc.block, err)
		}
		if list.Name != "pool-a.v1" || list.CNIVersion != CNIVersion || len(list.Plugins) != 1 || list.Plugins[0].Network.Type != "ptp" ||
			list.Plugins[0].Network.IPAM.Type != "host-local" {
			t.Fatalf("%s: libcni read %+v, plugin %+v", tc.block, list, list.Plugins[0].Network)
		}
		var p struct {
			MTU    *int  `json:"mtu"`
			IPMasq *bool `json:"ipMasq"`
			IPAM   struct {
				Ranges  [][]struct{ Subnet, Gateway string }
				Routes  []struct{ Dst string }
				DataDir string
			}
		}
		if err := json.Unmarshal(list.Plugins[0].Bytes, &p); err != nil {
			t.Fatal(err)
		}
		r := p.IPAM.Ranges
		if len(r) != 1 || len(r[0]) != 1 || r[0][0].Subnet != tc.block || r[0][0].Gateway != tc.gateway ||
			len(p.IPAM.Routes) != 1 || p.IPAM.Routes[0].Dst != tc.dst || p.IPAM.DataDir != "/run/ipam" ||
			p.IPMasq == nil || *p.IPMasq || (tc.mtu == 0) != (p.MTU == nil) || p.MTU != nil && *p.MTU != tc.mtu {
			t.Errorf("%s: plugin config %s", tc.block, list.Plugins[0].Bytes)
		}
	}
}

func TestRenderRefuses(t *testing.T) {
	ok := Config{Network: "nodenet", Block: netip.MustParsePrefix("10.244.0.64/26"), MTU: 1450}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no name", func(c *Config) { c.Network = "" }, "network name"},
		{"slash in name", func(c *Config) { c.Network = "a/b" }, "network name"},
		{"name starts with dash", func(c *Config) { c.Network = "-a" }, "network name"},
		{"long name", func(c *Config) { c.Network = strings.Repeat("a", 256) }, "network name"},
		{"no block", func(c *Config) { c.Block = netip.Prefix{} }, "no block"},
		{"host bits", func(c *Config) { c.Block = netip.MustParsePrefix("10.244.0.65/26") }, "host bits set (the block is 10.244.0.64/26)"},
		{"a /31", func(c *Config) { c.Block = netip.MustParsePrefix("10.244.0.64/31") }, "too small"},
		{"a /127", func(c *Config) { c.Block = netip.MustParsePrefix("fd00::/127") }, "at most 126"},
		{"small MTU", func(c *Config) { c.MTU = 67 }, "MTU 67"},
		{"large MTU", func(c *Config) { c.MTU = 65536 }, "MTU 65536"},
		{"relative data dir", func(c *Config) { c.DataDir = "ipam" }, "clean absolute"},
		{"unclean data dir", func(c *Config) { c.DataDir = "/var/lib/../ipam" }, "clean absolute"},
	} {
		c := ok
		tc.edit(&c)
		if _, err := Render(c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// TestNetworkNameIsLibcnis: the names Render takes are the names libcni takes.
func TestNetworkNameIsLibcnis(t *testing.T) {
	for _, n := range []string{"nodenet", "k8s-pod-network", "a", "9.x_y-z", "", "-a", ".a", "_a", "a b", "a/b", "pool:1", "é", "a\n"} {
		if got, lib := NetworkName(n), utils.ValidateNetworkName(n) == nil; got != lib {
			t.Errorf("NetworkName(%q) = %v, libcni says %v", n, got, lib)
		}
	}
}

func TestGateway(t *testing.T) {
	if g := Gateway(netip.MustParsePrefix("10.244.0.64/26")); g != netip.MustParseAddr("10.244.0.65") {
		t.Errorf("gateway %v", g)
	}
}
