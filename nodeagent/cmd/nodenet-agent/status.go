package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nodenet/terraform-provider-nodenet/internal/tlsconf"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

type dialOptions struct {
	addr, unix, ca, cert, key, expect string
}

// dialAgent connects to an agent over mTLS (TCP or unix socket), or plaintext on a unix
// socket when no TLS material is given.
func dialAgent(o dialOptions) (*grpc.ClientConn, error) {
	target := o.addr
	if o.unix != "" {
		if o.addr != "" {
			return nil, errors.New("give --addr or --unix, not both")
		}
		target = "unix:" + o.unix
	}
	if target == "" {
		return nil, errors.New("--addr or --unix is required")
	}
	if o.unix != "" && o.ca == "" && o.cert == "" && o.key == "" {
		return grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if o.ca == "" || o.cert == "" || o.key == "" || o.expect == "" {
		return nil, errors.New("--ca, --cert, --key and --expect are required for TLS")
	}
	ca, err := tlsconf.ReadPEM(o.ca)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	cert, err := tlsconf.ReadPEM(o.cert)
	if err != nil {
		return nil, fmt.Errorf("--cert: %w", err)
	}
	key, err := tlsconf.ReadPEM(o.key)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	cfg, err := tlsconf.Client(ca, cert, key, o.expect)
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(target, grpc.WithTransportCredentials(tlsconf.Credentials(cfg)))
}

func runStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", stderr)
	var o dialOptions
	fs.StringVar(&o.addr, "addr", "", "agent address host:port")
	fs.StringVar(&o.unix, "unix", "", "agent unix socket (plaintext unless TLS flags are given)")
	fs.StringVar(&o.ca, "ca", "", "CA certificate (PEM file)")
	fs.StringVar(&o.cert, "cert", "", "client certificate (PEM file)")
	fs.StringVar(&o.key, "key", "", "client key (PEM file)")
	fs.StringVar(&o.expect, "expect", "", "expected agent identity, nodenet://<cluster>/<node>")
	timeout := fs.Duration("timeout", 10*time.Second, "RPC timeout")
	var v statusView
	fs.BoolVar(&v.bgpOnly, "bgp", false, "print only the BGP status (calicoctl node status's layout)")
	fs.BoolVar(&v.json, "json", false, "print the BGP status (the nodenet_bgp_status data source's fields) and the tunnels' health as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	cc, err := dialAgent(o)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	return printStatus(ctx, pb.NewNodeAgentClient(cc), stdout, v)
}

// statusView is what `status` prints: everything, or only the BGP part (as a table or JSON).
type statusView struct {
	bgpOnly, json bool
}

func printStatus(ctx context.Context, c pb.NodeAgentClient, w io.Writer, v statusView) error {
	info, err := c.Info(ctx, &pb.InfoRequest{})
	if err != nil {
		return fmt.Errorf("status: Info: %w", err)
	}
	// The node's summary is printed even when its speaker cannot be read.
	b, bgpErr := fetchBGP(ctx, c, info)
	switch {
	case bgpErr != nil && (v.json || v.bgpOnly):
		return bgpErr
	case v.bgpOnly:
		renderBGP(w, b, time.Now())
		return nil
	}
	list, err := c.List(ctx, &pb.ListRequest{})
	if err != nil {
		return fmt.Errorf("status: List: %w", err)
	}
	hs, healthErr := fetchHealth(ctx, c, list)
	if v.json {
		if healthErr != nil {
			return healthErr
		}
		return writeStatusJSON(w, info, b, hs)
	}
	printNode(w, info, list)
	fmt.Fprintln(w)
	if len(hs) > 0 {
		renderHealth(w, hs, time.Now())
		fmt.Fprintln(w)
	}
	if bgpErr == nil {
		renderBGP(w, b, time.Now())
	}
	return errors.Join(healthErr, bgpErr)
}

// printNode is the agent's summary: identity, kernel, interfaces, managed objects, findings.
func printNode(w io.Writer, info *pb.NodeInfo, list *pb.ListResponse) {
	fmt.Fprintf(w, "node:           %s/%s\n", info.GetCluster(), info.GetNode())
	fmt.Fprintf(w, "agent version:  %s\n", info.GetAgentVersion())
	fmt.Fprintf(w, "capabilities:   %s\n", strings.Join(info.GetCapabilities(), ", "))
	fmt.Fprintf(w, "kernel:         %s\n", info.GetKernelRelease())
	var yes, no []string
	for k, v := range info.GetKernelFeatures() {
		if v {
			yes = append(yes, k)
		} else {
			no = append(no, k)
		}
	}
	sort.Strings(yes)
	sort.Strings(no)
	fmt.Fprintf(w, "features:       %s", strings.Join(yes, " "))
	if len(no) > 0 {
		fmt.Fprintf(w, " (missing: %s)", strings.Join(no, " "))
	}
	fmt.Fprintf(w, "\nboot id:        %s\n", info.GetBootId())
	fmt.Fprintf(w, "interfaces:\n")
	for _, i := range info.GetInterfaces() {
		owner := ""
		if i.GetOwner() != "" {
			owner = " owner=" + i.GetOwner()
		}
		fmt.Fprintf(w, "  %-15s %-7s %-5s mtu %-5d %s %s%s\n", i.GetName(), i.GetKind(), i.GetOperState(), i.GetMtu(),
			i.GetMac(), strings.Join(i.GetAddresses(), ","), owner)
	}
	fmt.Fprintf(w, "managed objects: %d\n", len(list.GetObjects()))
	for _, o := range list.GetObjects() {
		fmt.Fprintf(w, "  %s%s (owner %s)\n", o.GetId(), describeSpec(o), o.GetOwner())
	}
	printFindings(w, info)
}

// describeSpec summarises an object's spec after its id.
func describeSpec(o *pb.Object) string {
	t := o.GetVxlanTunnel()
	if t == nil {
		return ""
	}
	d := t.GetDevice()
	under := d.GetUnderlay()
	if d.GetLocalIp() != "" {
		under = strings.TrimPrefix(under+" local "+d.GetLocalIp(), " ")
	}
	health := ""
	if t.GetHealthCheck() {
		health = ", health checks"
	}
	return fmt.Sprintf(": vni %d underlay %s address %s, %d fdb, %d neighbors, %d routes%s", d.GetVni(),
		under, d.GetAddress(), len(t.GetFdb()), len(t.GetNeighbors()), len(t.GetRoutes()), health)
}

// printFindings shows what needs an operator's eye: objects whose replay failed or whose
// apply was interrupted, and nodenet-marked kernel entries no object explains.
func printFindings(w io.Writer, info *pb.NodeInfo) {
	if ps := info.GetProblems(); len(ps) > 0 {
		fmt.Fprintf(w, "problems: %d\n", len(ps))
		for _, p := range ps {
			fmt.Fprintf(w, "  %s: %s: %s\n", p.GetId(), p.GetProblem(), p.GetDetail())
		}
	}
	if us := info.GetUnexplained(); len(us) > 0 {
		fmt.Fprintf(w, "unexplained kernel entries (nodenet's marks, no managed object): %d\n", len(us))
		for _, u := range us {
			names := ""
			if u.GetObjectId() != "" {
				names = fmt.Sprintf(" (names %s: an apply of it takes it over, a delete of it removes it)", u.GetObjectId())
			}
			fmt.Fprintf(w, "  %s %s %s%s\n", u.GetEntry(), u.GetKey(), u.GetDetail(), names)
		}
	}
}
