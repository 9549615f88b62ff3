package bench

import (
	"bufio"
	"net"
	"net/netip"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
)

// birdNode is one node's BIRD 2 configuration for the convergence benchmark: the Calico
// seed's bird.cfg as nodeagent/lab renders it (birdconf/calico), with what the benchmark
// needs on top:
//   - every block the node holds as a static blackhole (Calico's confd writes one route per
//     block into bird_aggr.cfg and runs `birdc configure` when the node gets a new block);
//   - nodenet's timers, keepalive 3 and hold 9 (the seed leaves BIRD's 80 and 240);
//   - on a route reflector, `rr client` and `rr cluster id` on its peerings with its clients,
//     as Calico's confd writes them for a node with a routeReflectorClusterID.
//
// The seed's calico_aggr filter only concerns routes beneath the node's first block; here
// every block is exported whole, so it is left out.
type birdNode struct {
	RouterID  netip.Addr
	ASN       uint32
	Pool      netip.Prefix // exported to peers and programmed into the kernel
	ClusterID netip.Addr   // on the reflector only: every peer is its client
	Peers     []lab.BirdNeighbor
	Blocks    []netip.Prefix
}

var birdNodeTmpl = template.Must(template.New("bird").Parse(`# nodenet bench: Calico's bird.cfg (seed 004, BIRD 2 port), blocks, nodenet's timers, RR.
log stderr all;
router id {{.RouterID}};

filter calico_export_to_bgp_peers {
  if ( net ~ {{.Pool}} ) then {
    accept;
  }
  reject;
}

filter calico_kernel_programming {
  if ( net ~ {{.Pool}} ) then {
    accept;
  }
  accept;
}

protocol kernel {
  learn;
  persist;
  scan time 2;
  graceful restart;
  merge paths on;
  metric 0;
  ipv4 {
    import all;
    export filter calico_kernel_programming;
  };
}

protocol device {
  debug { states };
  scan time 2;
}

protocol direct {
  debug { states };
  ipv4;
  interface -"cali*", -"kube-ipvs*", "*";
}

template bgp bgp_template {
  debug { states };
  description "Connection to BGP peer";
  local as {{.ASN}};
  multihop;
  graceful restart;
  connect delay time 2;
  connect retry time 5;
  error wait time 5,30;
  # bench: nodenet's timers.
  hold time 9;
  keepalive time 3;
  ipv4 {
    gateway recursive;
    import all;
    export filter calico_export_to_bgp_peers;
    add paths on;
  };
}
{{range .Peers}}
protocol bgp {{.Name}} from bgp_template {
  neighbor {{.IP}} as {{$.ASN}};
  source address {{$.RouterID}};
{{- if $.ClusterID.IsValid}}
  rr client;
  rr cluster id {{$.ClusterID}};
{{- end}}
}
{{end}}
protocol static {
  ipv4;
{{- range .Blocks}}
  route {{.}} blackhole;
{{- end}}
}
`))

func (c birdNode) render() (string, error) {
	var sb strings.Builder
	if err := birdNodeTmpl.Execute(&sb, c); err != nil {
		return "", err
	}
	return sb.String(), nil
}

// birdPeerName is Calico's protocol name for a peer: Mesh_10_99_0_2, Node_10_99_0_1.
func birdPeerName(kind string, a netip.Addr) string {
	return kind + "_" + strings.ReplaceAll(a.String(), ".", "_")
}

// torWake is how often the ToR's event loop is woken while a receiver takes its routes.
const torWake = 10 * time.Millisecond

// wakeBird sends `show status` to a BIRD's control socket every `every` until the returned
// func is called. BIRD 2.0.12 sends the UPDATE that ends a table's feed (the last routes,
// then the End-of-RIB) only at the next wake-up of its event loop: a timer or a packet on
// another socket, 40 ms to a second after the bulk, every receiver waiting for it (seen on
// the wire: the ToR sends it within a tenth of a millisecond of an unrelated KEEPALIVE
// reaching it). A command on its control socket is such a wake-up; every receiver gets the
// same, so what is timed is the receiver's work, not BIRD's sleep.
func wakeBird(b *testing.B, bd *lab.Bird, every time.Duration) (stop func()) {
	c, err := net.Dial("unix", bd.ControlSocket)
	if err != nil {
		b.Fatalf("BIRD control socket %s: %v", bd.ControlSocket, err)
	}
	done, ended := make(chan struct{}), make(chan error, 1)
	go func() {
		r := bufio.NewReader(c)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for first := true; ; first = false {
			if !first {
				select {
				case <-done:
					ended <- nil
					return
				case <-tick.C:
				}
				if _, err := c.Write([]byte("show status\n")); err != nil {
					ended <- err
					return
				}
			}
			// A reply (and the greeting) ends with a line whose code is followed by a space.
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					ended <- err
					return
				}
				if len(line) > 4 && line[4] == ' ' {
					break
				}
			}
		}
	}()
	return func() {
		close(done)
		err := <-ended
		c.Close()
		if err != nil {
			b.Fatalf("waking BIRD through %s: %v", bd.ControlSocket, err)
		}
	}
}
