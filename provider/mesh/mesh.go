// Package mesh plans a VXLAN overlay across nodes: from the members of a
// nodenet_vxlan_tunnel and what their agents report, it derives every node's share (its
// device and the FDB, neighbour and route entries that reach the other members). It is pure
// (no I/O) so the resource, its plan, the benchmarks and the tests use the same code.
package mesh

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Member is one node of the overlay, as configured.
type Member struct {
	// Key is "<cluster>/<node>".
	Key string
	// Underlay is an interface name or an IPv4 address of the node.
	Underlay string
	// Address is the overlay address with prefix length.
	Address string
	// MAC is the configured MAC; "" means derived.
	MAC string
}

// Route sends Dst through the tunnel to the member Via, on the members On (nil: the default).
type Route struct {
	Dst string
	Via string
	On  []string
}

// Input is a whole nodenet_vxlan_tunnel.
type Input struct {
	Name     string
	VNI      int64
	Port     int64
	MTU      int64 // 0: the smallest underlay MTU - 50
	Learning bool
	Members  []Member
	Routes   []Route
}

// Error is a rule broken by one attribute: Attr is the top-level attribute, Key the map key
// (member or route) if any, Sub the nested attribute if any.
type Error struct {
	Attr, Key, Sub string
	Msg            string
}

func (e *Error) Error() string {
	p := e.Attr
	if e.Key != "" {
		p += fmt.Sprintf("[%q]", e.Key)
	}
	if e.Sub != "" {
		p += "." + e.Sub
	}
	return p + ": " + e.Msg
}

func errf(attr, key, sub, format string, args ...any) *Error {
	return &Error{Attr: attr, Key: key, Sub: sub, Msg: fmt.Sprintf(format, args...)}
}

// fieldMsg keeps only the message of a contract FieldError (the path is ours).
func fieldMsg(err error) string {
	if fe, ok := pb.AsFieldError(err); ok {
		return fe.Msg
	}
	return err.Error()
}

// SplitKey splits a member key "<cluster>/<node>".
func SplitKey(key string) (cluster, node string, ok bool) {
	cluster, node, ok = strings.Cut(key, "/")
	if !ok || cluster == "" || node == "" || strings.Contains(node, "/") {
		return "", "", false
	}
	return cluster, node, true
}

// Validate checks everything that needs no node: it runs at plan time before any agent is
// asked. Every error names its attribute.
func Validate(in Input) []*Error { return append(ValidateFields(in), ValidateCross(in)...) }

// ValidateFields checks each value on its own: the rules the schema's attribute validators
// also apply (the provider reports those), for callers without a schema (benchmarks, tests).
func ValidateFields(in Input) []*Error {
	var errs []*Error
	add := func(e *Error) { errs = append(errs, e) }
	if in.Name != "" {
		if err := pb.ValidateIfName("name", in.Name); err != nil {
			add(errf("name", "", "", "%s", fieldMsg(err)))
		}
	}
	if err := pb.ValidateVNI("vni", in.VNI); err != nil {
		add(errf("vni", "", "", "%s", fieldMsg(err)))
	}
	if err := pb.ValidatePort("port", in.Port); err != nil {
		add(errf("port", "", "", "%s", fieldMsg(err)))
	}
	if in.MTU != 0 {
		if err := pb.ValidateMTU("mtu", in.MTU); err != nil {
			add(errf("mtu", "", "", "%s", fieldMsg(err)))
		}
	}
	for _, m := range sortedMembers(in.Members) {
		if _, _, ok := SplitKey(m.Key); !ok {
			add(errf("members", m.Key, "", "member keys are \"<cluster>/<node>\", got %q", m.Key))
		}
		if m.Underlay != "" {
			if _, err := netip.ParseAddr(m.Underlay); err != nil {
				if err := pb.ValidateIfName("underlay", m.Underlay); err != nil {
					add(errf("members", m.Key, "underlay", "%s; give an interface name (like eth0) or an IPv4 address of the node", fieldMsg(err)))
				}
			} else if _, err := pb.ParseIPv4("underlay", m.Underlay); err != nil {
				add(errf("members", m.Key, "underlay", "%s", fieldMsg(err)))
			}
		}
		if m.MAC != "" {
			if mac, err := pb.ParseUnicastMAC("mac", m.MAC); err != nil {
				add(errf("members", m.Key, "mac", "%s", fieldMsg(err)))
			} else if mac != m.MAC {
				add(errf("members", m.Key, "mac", "write %q as %q (lower case, colons), the way the kernel reports it", m.MAC, mac))
			}
		}
		if m.Address != "" {
			if _, err := pb.ParseInterfaceAddress("address", m.Address); err != nil {
				add(errf("members", m.Key, "address", "%s", fieldMsg(err)))
			}
		}
	}
	for _, r := range sortedRoutes(in.Routes) {
		if _, err := pb.ParseCIDR("dst", r.Dst); err != nil {
			add(errf("routes", r.Dst, "", "%s", fieldMsg(err)))
		}
	}
	return errs
}

// ValidateCross checks the relations between values: one overlay subnet, an address per
// member, routes through members. Values that break their own rules are skipped here.
func ValidateCross(in Input) []*Error {
	var errs []*Error
	add := func(e *Error) { errs = append(errs, e) }
	if len(in.Members) == 0 {
		add(errf("members", "", "", "at least one member is required"))
	}
	byAddr := map[netip.Addr]string{}
	var subnet netip.Prefix
	var subnetOf string
	members := map[string]bool{}
	for _, m := range sortedMembers(in.Members) {
		members[m.Key] = true
		p, err := pb.ParseInterfaceAddress("address", m.Address)
		if err != nil {
			continue
		}
		if other, dup := byAddr[p.Addr()]; dup {
			add(errf("members", m.Key, "address", "overlay address %s is also member %s's; every member needs its own", p.Addr(), other))
		}
		byAddr[p.Addr()] = m.Key
		if !subnet.IsValid() {
			subnet, subnetOf = p.Masked(), m.Key
		} else if p.Masked() != subnet {
			add(errf("members", m.Key, "address", "%s is not in the overlay subnet %s of member %s; all members' overlay addresses must be in one subnet", m.Address, subnet, subnetOf))
		}
	}
	seenDst := map[netip.Prefix]string{}
	for _, r := range sortedRoutes(in.Routes) {
		dst, err := pb.ParseCIDR("dst", r.Dst)
		if err == nil {
			if other, dup := seenDst[dst]; dup {
				add(errf("routes", r.Dst, "", "the same destination as route %q", other))
			}
			seenDst[dst] = r.Dst
		}
		if r.Via != "" && !members[r.Via] {
			add(errf("routes", r.Dst, "via", "%q is not a member of this tunnel; via must be one of: %s", r.Via, strings.Join(memberKeys(in.Members), ", ")))
		}
		for _, o := range r.On {
			if !members[o] {
				add(errf("routes", r.Dst, "on", "%q is not a member of this tunnel; on lists members: %s", o, strings.Join(memberKeys(in.Members), ", ")))
			}
			if o == r.Via {
				add(errf("routes", r.Dst, "on", "%q is the route's own via member; a member does not route to itself", o))
			}
		}
		if dst.IsValid() && subnet.IsValid() && dst.Overlaps(subnet) {
			add(errf("routes", r.Dst, "", "%s overlaps the overlay subnet %s", dst, subnet))
		}
	}
	return errs
}

// Targets are the members that get a route: On when given; otherwise every member outside
// the via member's cluster, or every other member when all members are in one cluster.
func Targets(r Route, members []Member) []string {
	if r.On != nil {
		out := append([]string(nil), r.On...)
		sort.Strings(out)
		return out
	}
	viaCluster, _, _ := SplitKey(r.Via)
	oneCluster := true
	for _, m := range members {
		if c, _, _ := SplitKey(m.Key); c != viaCluster {
			oneCluster = false
		}
	}
	var out []string
	for _, m := range members {
		c, _, _ := SplitKey(m.Key)
		if m.Key == r.Via || (!oneCluster && c == viaCluster) {
			continue
		}
		out = append(out, m.Key)
	}
	sort.Strings(out)
	return out
}

// MemberPlan is one node's share, as planned.
type MemberPlan struct {
	Key         string
	MAC         string
	LocalIP     string
	UnderlayDev string
	MTU         int64
	Spec        *pb.VxlanTunnel
}

// Plan is the whole overlay, planned.
type Plan struct {
	MTU     int64
	Members map[string]*MemberPlan
}

// Build plans every member's share from the input and the members' NodeInfo (interfaces and
// kernel features). Errors name the attribute they are about.
func Build(in Input, info map[string]*pb.NodeInfo) (*Plan, []*Error) {
	if errs := Validate(in); len(errs) > 0 {
		return nil, errs
	}
	var errs []*Error
	plan := &Plan{Members: map[string]*MemberPlan{}}
	minMTU, minOf := int64(0), ""
	ms := sortedMembers(in.Members)
	for _, m := range ms {
		cluster, node, _ := SplitKey(m.Key)
		ni := info[m.Key]
		if ni == nil {
			errs = append(errs, errf("members", m.Key, "", "no information from node %s", m.Key))
			continue
		}
		if missing := missingCapabilities(ni); len(missing) > 0 {
			errs = append(errs, errf("members", m.Key, "", "node %s: its agent (version %s) lacks %s; upgrade nodenet-agent there", m.Key, ni.GetAgentVersion(), strings.Join(missing, ", ")))
			continue
		}
		if ok, known := ni.GetKernelFeatures()["vxlan"]; known && !ok {
			errs = append(errs, errf("members", m.Key, "", "node %s: the kernel has no vxlan support (kernel %s)", m.Key, ni.GetKernelRelease()))
			continue
		}
		dev, ip, mtu, err := resolveUnderlay(ni, m.Underlay)
		if err != nil {
			errs = append(errs, errf("members", m.Key, "underlay", "node %s: %s", m.Key, err))
			continue
		}
		mac := m.MAC
		if mac == "" {
			mac = pb.DeriveMAC(cluster, node, in.Name)
		} else {
			mac, _ = pb.ParseUnicastMAC("mac", mac)
		}
		plan.Members[m.Key] = &MemberPlan{Key: m.Key, MAC: mac, LocalIP: ip, UnderlayDev: dev}
		if minOf == "" || int64(mtu) < minMTU {
			minMTU, minOf = int64(mtu), m.Key
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	max := minMTU - pb.VxlanOverhead
	plan.MTU = in.MTU
	if plan.MTU == 0 {
		plan.MTU = max
	} else if plan.MTU > max {
		return nil, []*Error{errf("mtu", "", "", "%d is more than the underlay allows: member %s's underlay has MTU %d, so at most %d (VXLAN adds %d bytes)", in.MTU, minOf, minMTU, max, pb.VxlanOverhead)}
	}

	port := in.Port
	for _, m := range ms {
		mp := plan.Members[m.Key]
		mp.MTU = plan.MTU
		t := &pb.VxlanTunnel{Device: &pb.VxlanDevice{
			Name: in.Name, Vni: uint32(in.VNI), Port: uint32(port), Underlay: mp.UnderlayDev,
			LocalIp: mp.LocalIP, Learning: in.Learning, Mtu: uint32(plan.MTU), Mac: mp.MAC,
			Address: m.Address,
		}}
		for _, o := range ms {
			if o.Key == m.Key {
				continue
			}
			op := plan.Members[o.Key]
			t.Fdb = append(t.Fdb, &pb.FdbEntry{Mac: op.MAC, Dst: op.LocalIP})
			if o.Address != "" {
				p, _ := netip.ParsePrefix(o.Address)
				t.Neighbors = append(t.Neighbors, &pb.Neighbor{Ip: p.Addr().String(), Mac: op.MAC})
			}
		}
		mp.Spec = t
	}
	overlay := map[string]string{}
	for _, m := range ms {
		if p, err := netip.ParsePrefix(m.Address); err == nil {
			overlay[m.Key] = p.Addr().String()
		}
	}
	for _, r := range sortedRoutes(in.Routes) {
		via := overlay[r.Via]
		if via == "" {
			return nil, []*Error{errf("routes", r.Dst, "via", "member %s has no overlay address to route through", r.Via)}
		}
		for _, k := range Targets(r, in.Members) {
			mp := plan.Members[k]
			mp.Spec.Routes = append(mp.Spec.Routes, &pb.Route{Dst: r.Dst, Via: via})
		}
	}
	for _, mp := range plan.Members {
		Sort(mp.Spec)
	}
	return plan, nil
}

// RequiredCapabilities are what an agent must implement for a vxlan_tunnel member.
var RequiredCapabilities = []string{pb.KindVxlanTunnel, "dry_run"}

// missingCapabilities lists the required capabilities the agent does not report. An agent
// that reports none (a NodeInfo made up from a member's last known state) is not checked.
func missingCapabilities(ni *pb.NodeInfo) []string {
	if len(ni.GetCapabilities()) == 0 {
		return nil
	}
	var missing []string
	for _, c := range RequiredCapabilities {
		found := false
		for _, have := range ni.GetCapabilities() {
			found = found || have == c
		}
		if !found {
			missing = append(missing, c)
		}
	}
	return missing
}

// resolveUnderlay finds the underlay interface, its IPv4 address and MTU on the node.
func resolveUnderlay(ni *pb.NodeInfo, underlay string) (dev, ip string, mtu uint32, err error) {
	names := make([]string, 0, len(ni.GetInterfaces()))
	if a, perr := netip.ParseAddr(underlay); perr == nil {
		for _, itf := range ni.GetInterfaces() {
			for _, p := range itf.GetAddresses() {
				if pp, err := netip.ParsePrefix(p); err == nil && pp.Addr() == a {
					return itf.GetName(), a.String(), itf.GetMtu(), nil
				}
			}
		}
		return "", "", 0, fmt.Errorf("no interface has the address %s", a)
	}
	for _, itf := range ni.GetInterfaces() {
		names = append(names, itf.GetName())
		if itf.GetName() != underlay {
			continue
		}
		for _, p := range itf.GetAddresses() {
			if pp, err := netip.ParsePrefix(p); err == nil && pp.Addr().Is4() {
				return itf.GetName(), pp.Addr().String(), itf.GetMtu(), nil
			}
		}
		return "", "", 0, fmt.Errorf("interface %s has no IPv4 address to use as the VXLAN local IP", underlay)
	}
	sort.Strings(names)
	return "", "", 0, fmt.Errorf("no interface %s (the node has: %s)", underlay, strings.Join(names, ", "))
}

// Sort orders a spec's entries the way agents report them, so plans and answers compare.
func Sort(t *pb.VxlanTunnel) {
	sort.Slice(t.Fdb, func(i, j int) bool { return t.Fdb[i].GetMac() < t.Fdb[j].GetMac() })
	sort.Slice(t.Neighbors, func(i, j int) bool {
		return addrLess(t.Neighbors[i].GetIp(), t.Neighbors[j].GetIp())
	})
	sort.Slice(t.Routes, func(i, j int) bool { return prefixLess(t.Routes[i].GetDst(), t.Routes[j].GetDst()) })
}

func addrLess(a, b string) bool {
	x, err1 := netip.ParseAddr(a)
	y, err2 := netip.ParseAddr(b)
	if err1 != nil || err2 != nil {
		return a < b
	}
	return x.Less(y)
}

func prefixLess(a, b string) bool {
	x, err1 := netip.ParsePrefix(a)
	y, err2 := netip.ParsePrefix(b)
	if err1 != nil || err2 != nil {
		return a < b
	}
	if x.Addr() != y.Addr() {
		return x.Addr().Less(y.Addr())
	}
	return x.Bits() < y.Bits()
}

// FDBStrings renders FDB entries as "<mac> dst <ip>", the way `bridge fdb` prints them.
func FDBStrings(t *pb.VxlanTunnel) []string {
	out := []string{}
	for _, e := range t.GetFdb() {
		out = append(out, e.GetMac()+" dst "+e.GetDst())
	}
	return out
}

// NeighborStrings renders neighbours as "<ip> lladdr <mac>", the way `ip neigh` prints them.
func NeighborStrings(t *pb.VxlanTunnel) []string {
	out := []string{}
	for _, n := range t.GetNeighbors() {
		out = append(out, n.GetIp()+" lladdr "+n.GetMac())
	}
	return out
}

// RouteStrings renders routes as "<dst> via <gateway>", the way `ip route` prints them.
func RouteStrings(t *pb.VxlanTunnel) []string {
	out := []string{}
	for _, r := range t.GetRoutes() {
		out = append(out, r.GetDst()+" via "+r.GetVia())
	}
	return out
}

func sortedMembers(ms []Member) []Member {
	out := append([]Member(nil), ms...)
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func sortedRoutes(rs []Route) []Route {
	out := append([]Route(nil), rs...)
	sort.Slice(out, func(i, j int) bool { return prefixLess(out[i].Dst, out[j].Dst) })
	return out
}

func memberKeys(ms []Member) []string {
	var out []string
	for _, m := range sortedMembers(ms) {
		out = append(out, m.Key)
	}
	return out
}

// Reconstruct rebuilds a tunnel's configuration from what the members' agents observe, for
// import: the device attributes, every member's underlay, address and MAC, and the routes
// (with `on` left nil where the routes stand on exactly the default members). Routes through
// a gateway that is no member's overlay address cannot be expressed and are returned as notes.
func Reconstruct(observed map[string]*pb.VxlanTunnel) (Input, []string, error) {
	var in Input
	var notes []string
	keys := make([]string, 0, len(observed))
	for k := range observed {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		return in, nil, fmt.Errorf("no member has the device")
	}
	overlay := map[string]string{}
	for i, k := range keys {
		d := observed[k].GetDevice()
		if i == 0 {
			in.Name, in.VNI, in.Port, in.Learning, in.MTU = d.GetName(), int64(d.GetVni()), int64(d.GetPort()), d.GetLearning(), int64(d.GetMtu())
		} else {
			first := observed[keys[0]].GetDevice()
			if d.GetVni() != first.GetVni() || d.GetPort() != first.GetPort() {
				return in, nil, fmt.Errorf("%s has VNI %d port %d but %s has VNI %d port %d: they are not one overlay", k, d.GetVni(), d.GetPort(), keys[0], first.GetVni(), first.GetPort())
			}
			if int64(d.GetMtu()) < in.MTU {
				in.MTU = int64(d.GetMtu())
			}
		}
		underlay := d.GetUnderlay()
		if underlay == "" {
			underlay = d.GetLocalIp()
		}
		in.Members = append(in.Members, Member{Key: k, Underlay: underlay, Address: d.GetAddress(), MAC: d.GetMac()})
		if p, err := netip.ParsePrefix(d.GetAddress()); err == nil {
			overlay[p.Addr().String()] = k
		}
	}
	type onVia struct {
		via string
		on  []string
	}
	routes := map[string]*onVia{}
	for _, k := range keys {
		for _, r := range observed[k].GetRoutes() {
			via, ok := overlay[r.GetVia()]
			if !ok {
				notes = append(notes, fmt.Sprintf("%s: route %s via %s is not through a member's overlay address; left out", k, r.GetDst(), r.GetVia()))
				continue
			}
			cur := routes[r.GetDst()]
			if cur == nil {
				cur = &onVia{via: via}
				routes[r.GetDst()] = cur
			} else if cur.via != via {
				notes = append(notes, fmt.Sprintf("%s: route %s via %s differs from other members' (via %s); left out", k, r.GetDst(), via, cur.via))
				continue
			}
			cur.on = append(cur.on, k)
		}
	}
	for dst, r := range routes {
		sort.Strings(r.on)
		route := Route{Dst: dst, Via: r.via}
		if strings.Join(Targets(route, in.Members), ",") != strings.Join(r.on, ",") {
			route.On = r.on
		}
		in.Routes = append(in.Routes, route)
	}
	in.Routes = sortedRoutes(in.Routes)
	return in, notes, nil
}
