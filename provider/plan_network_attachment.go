package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-jsontypes/jsontypes"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
	"github.com/nodenet/terraform-provider-nodenet/provider/kube"
)

// The CNI specification versions a configuration may declare.
var cniVersions = []string{"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

var (
	macvlanModes = []string{"bridge", "private", "vepa", "passthru", "source"}
	ipvlanModes  = []string{"l2", "l3", "l3s"}
	pathCluster  = path.Root("cluster")
)

func cniVersionsMD() string { return "`" + strings.Join(cniVersions, "`, `") + "`" }

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ValidateConfig checks what can be checked without the cluster: one form, IPAM ranges,
// the raw configuration's shape.
func (r *NetworkAttachmentResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m networkAttachmentModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	validateForm(&m, &resp.Diagnostics)
	validateIPAM(m.IPAM, &resp.Diagnostics)
	if !m.Config.IsNull() && !m.Config.IsUnknown() {
		validateRawConfig(m.Config.ValueString(), &resp.Diagnostics)
	}
}

// validateForm: exactly one of the typed attributes or config; ipam and cni_version only
// with a typed one.
func validateForm(m *networkAttachmentModel, diags *diag.Diagnostics) {
	var set []string
	for name, on := range map[string]bool{"macvlan": m.Macvlan != nil, "ipvlan": m.Ipvlan != nil, "bridge": m.Bridge != nil,
		"host_device": m.HostDevice != nil, "config": !m.Config.IsNull()} {
		if on {
			set = append(set, name)
		}
	}
	sort.Strings(set)
	switch {
	case len(set) == 0:
		diags.AddAttributeError(path.Root("config"), "Missing attachment type",
			"set one of macvlan, ipvlan, bridge, host_device (typed) or config (a raw CNI configuration)")
	case len(set) > 1:
		diags.AddAttributeError(path.Root(set[1]), "Conflicting attachment types",
			fmt.Sprintf("set exactly one of macvlan, ipvlan, bridge, host_device or config; this attachment sets %s", strings.Join(set, " and ")))
	}
	if !m.Config.IsNull() && m.IPAM != nil {
		diags.AddAttributeError(path.Root("ipam"), "ipam with config", "a raw config carries its own \"ipam\": ipam goes with macvlan, ipvlan, bridge or host_device")
	}
	if !m.Config.IsNull() && !m.CNIVersion.IsNull() && !m.CNIVersion.IsUnknown() {
		diags.AddAttributeError(path.Root("cni_version"), "cni_version with config", "a raw config carries its own \"cniVersion\": write it there")
	}
}

func validateRawConfig(s string, diags *diag.Diagnostics) {
	if !json.Valid([]byte(s)) {
		return // the JSON type reports invalid JSON itself
	}
	p := path.Root("config")
	r, err := parseRaw(s)
	if err != nil {
		diags.AddAttributeError(p, "Invalid CNI configuration", err.Error())
		return
	}
	if r.CNIVersion != "" && !slices.Contains(cniVersions, r.CNIVersion) {
		diags.AddAttributeError(p, "Invalid CNI configuration", fmt.Sprintf("cniVersion %q is not a CNI specification version: one of %s", r.CNIVersion, strings.Join(cniVersions, ", ")))
	}
	var mode struct {
		Mode string `json:"mode"`
	}
	_ = json.Unmarshal([]byte(s), &mode)
	modes := map[string][]string{"macvlan": macvlanModes, "ipvlan": ipvlanModes}[r.Type]
	if mode.Mode != "" && modes != nil && !slices.Contains(modes, mode.Mode) {
		diags.AddAttributeError(p, "Invalid CNI configuration", fmt.Sprintf("mode %q is not valid for %s: one of %s", mode.Mode, r.Type, strings.Join(modes, ", ")))
	}
}

func validateIPAM(p *ipamModel, diags *diag.Diagnostics) {
	if p == nil {
		return
	}
	root := path.Root("ipam")
	n := 0
	for _, on := range []bool{p.Whereabouts != nil, p.Static != nil, p.HostLocal != nil} {
		if on {
			n++
		}
	}
	if n != 1 {
		diags.AddAttributeError(root, "Invalid ipam", fmt.Sprintf("set exactly one of whereabouts, static or host_local (%d set)", n))
		return
	}
	switch {
	case p.Whereabouts != nil:
		w, wp := p.Whereabouts, root.AtName("whereabouts")
		checkRange(wp, "range", w.Range, w.RangeStart, w.RangeEnd, w.Gateway, diags)
		if rng, ok := prefixOf(w.Range); ok {
			for i, e := range w.Exclude {
				if ex, ok := prefixOf(e); ok && !(rng.Contains(ex.Addr()) && ex.Bits() >= rng.Bits()) {
					diags.AddAttributeError(wp.AtName("exclude").AtListIndex(i), "Exclusion outside the range",
						fmt.Sprintf("exclude %s is not inside range %s: each exclusion must be a CIDR within %s", ex, rng, rng))
				}
			}
		}
	case p.HostLocal != nil:
		h := p.HostLocal
		checkRange(root.AtName("host_local"), "subnet", h.Subnet, h.RangeStart, h.RangeEnd, h.Gateway, diags)
	case p.Static != nil:
		for i, a := range p.Static.Addresses {
			pre, err := netip.ParsePrefix(a.Address.ValueString())
			gw, gerr := netip.ParseAddr(a.Gateway.ValueString())
			if err == nil && gerr == nil && !pre.Masked().Contains(gw) {
				diags.AddAttributeError(root.AtName("static").AtName("addresses").AtListIndex(i).AtName("gateway"), "Gateway outside the subnet",
					fmt.Sprintf("gateway %s is not in %s, the subnet of address %s", gw, pre.Masked(), pre))
			}
		}
	}
}

// checkRange: start, end and gateway inside the CIDR named rangeAttr, start not after end.
func checkRange(p path.Path, rangeAttr string, cidr, start, end, gw types.String, diags *diag.Diagnostics) {
	rng, ok := prefixOf(cidr)
	if !ok {
		return
	}
	addrs := map[string]netip.Addr{}
	for _, a := range []struct {
		name string
		v    types.String
	}{{"range_start", start}, {"range_end", end}, {"gateway", gw}} {
		ip, err := netip.ParseAddr(a.v.ValueString())
		if a.v.IsNull() || a.v.IsUnknown() || err != nil {
			continue
		}
		addrs[a.name] = ip
		if !rng.Contains(ip) {
			diags.AddAttributeError(p.AtName(a.name), "Address outside the range",
				fmt.Sprintf("%s %s is outside %s %s: it must be an address from %s to %s", a.name, ip, rangeAttr, rng, rng.Addr(), lastAddr(rng)))
		}
	}
	if s, ok1 := addrs["range_start"]; ok1 {
		if e, ok2 := addrs["range_end"]; ok2 && e.Less(s) {
			diags.AddAttributeError(p.AtName("range_end"), "Empty range", fmt.Sprintf("range_end %s is before range_start %s", e, s))
		}
	}
}

func prefixOf(v types.String) (netip.Prefix, bool) {
	if v.IsNull() || v.IsUnknown() {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(v.ValueString())
	return p.Masked(), err == nil && p.Addr().Is4()
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// ModifyPlan renders the configuration and the pod annotation and, when the attachment is
// created or changed, checks it against the cluster: the namespace exists, and every node
// has the kernel feature and the host interface the plugin needs.
func (r *NetworkAttachmentResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		return // destroy
	}
	if !req.Config.Raw.IsFullyKnown() {
		return // rendered once the values are known (at apply)
	}
	var m networkAttachmentModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var prior *networkAttachmentModel
	if !req.State.Raw.IsNull() {
		prior = &networkAttachmentModel{}
		resp.Diagnostics.Append(req.State.Get(ctx, prior)...)
	}
	if prior != nil && !prior.Config.IsNull() && !m.Config.IsNull() && sameJSON(prior.Config.ValueString(), m.Config.ValueString()) {
		// The same JSON written differently: Terraform accepts the prior value in place of
		// the configuration's when the provider says they are equivalent, so no diff shows.
		m.Config = prior.Config
	}
	var cfgCNI types.String
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("cni_version"), &cfgCNI)...)
	rendered := planRendered(&m, cfgCNI)
	if prior != nil && sameJSON(prior.RenderedConfig.ValueString(), rendered) {
		rendered = prior.RenderedConfig.ValueString() // no diff for formatting alone
	}
	m.RenderedConfig = jsontypes.NewNormalizedValue(rendered)
	m.ID = types.StringValue(m.Namespace.ValueString() + "/" + m.Name.ValueString())
	m.PodAnnotation = types.StringValue(podAnnotation(m.Namespace.ValueString(), m.Name.ValueString(), m.PodInterface.ValueString(), stringsOf(m.PodDefaultRoute)))
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &m)...)
	if r.data == nil || resp.Diagnostics.HasError() {
		return
	}
	if prior != nil && prior.RenderedConfig.ValueString() == rendered && prior.ResourceName.Equal(m.ResourceName) &&
		prior.Cluster.Equal(m.Cluster) && prior.Namespace.Equal(m.Namespace) {
		return // nothing the cluster would see changes
	}
	r.checkCluster(ctx, &m, &resp.Diagnostics)
}

// planRendered is the configuration the plan writes; for a typed one it also settles
// cni_version's default when the configuration leaves it out (the prior value may be a
// version someone wrote into the NAD by hand), for a raw one cni_version mirrors the
// configuration's cniVersion.
func planRendered(m *networkAttachmentModel, configured types.String) string {
	if m.typed() {
		if configured.IsNull() {
			m.CNIVersion = types.StringValue(DefaultCNIVersion)
		}
		return render(m.toConf())
	}
	if r, err := parseRaw(m.Config.ValueString()); err == nil {
		m.CNIVersion = stringOrNull(r.CNIVersion)
	} else {
		m.CNIVersion = types.StringNull()
	}
	return m.Config.ValueString()
}

// checkCluster runs the checks that need the cluster's API and its nodes' agents.
func (r *NetworkAttachmentResource) checkCluster(ctx context.Context, m *networkAttachmentModel, diags *diag.Diagnostics) {
	cluster := m.Cluster.ValueString()
	c, err := r.client(cluster)
	if err != nil {
		diags.AddAttributeError(pathCluster, "Unknown cluster", err.Error())
		return
	}
	r.checkNamespace(ctx, c, cluster, m.Namespace.ValueString(), diags)
	need := needsOf(m)
	if need.feature == "" && need.itf == "" {
		return
	}
	r.checkNodes(ctx, cluster, need, diags)
}

func (r *NetworkAttachmentResource) checkNamespace(ctx context.Context, c *kube.Client, cluster, ns string, diags *diag.Diagnostics) {
	if r.data.checks.namespaceKnown(cluster, ns) {
		return // found earlier in this run
	}
	ok, err := c.NamespaceExists(ctx, ns)
	switch {
	case err != nil:
		diags.AddAttributeError(path.Root("namespace"), "Cannot check the namespace", err.Error())
	case !ok:
		diags.AddAttributeError(path.Root("namespace"), "Namespace does not exist",
			fmt.Sprintf("namespace %q does not exist in cluster %s: create it first (kubernetes_namespace, kubectl create namespace)", ns, cluster))
	default:
		r.data.checks.namespaceFound(cluster, ns)
	}
}

// nodeNeeds is what the plugin needs of every node: a kernel feature (link kind) and a host
// interface, with the attribute that asked for them.
type nodeNeeds struct {
	plugin, feature, itf, itfRole string
	featurePath, itfPath          path.Path
}

func needsOf(m *networkAttachmentModel) nodeNeeds {
	switch {
	case m.Macvlan != nil:
		p := path.Root("macvlan")
		return nodeNeeds{"macvlan", "macvlan", m.Macvlan.Master.ValueString(), "master", p, p.AtName("master")}
	case m.Ipvlan != nil:
		p := path.Root("ipvlan")
		return nodeNeeds{"ipvlan", "ipvlan", m.Ipvlan.Master.ValueString(), "master", p, p.AtName("master")}
	case m.Bridge != nil:
		return nodeNeeds{plugin: "bridge", feature: "bridge", featurePath: path.Root("bridge")}
	case m.HostDevice != nil:
		return nodeNeeds{plugin: "host-device", itf: m.HostDevice.Device.ValueString(), itfRole: "device", itfPath: path.Root("host_device").AtName("device")}
	}
	p := path.Root("config")
	r, err := parseRaw(m.Config.ValueString())
	if err != nil {
		return nodeNeeds{}
	}
	n := nodeNeeds{plugin: r.Type, featurePath: p, itfPath: p}
	switch r.Type {
	case "macvlan", "ipvlan":
		n.feature, n.itf, n.itfRole = r.Type, r.Master, "master"
	case "bridge":
		n.feature = "bridge"
	case "host-device":
		n.itf, n.itfRole = r.Device, "device"
	}
	return n
}

func (r *NetworkAttachmentResource) checkNodes(ctx context.Context, cluster string, need nodeNeeds, diags *diag.Diagnostics) {
	keys := r.data.Fleet.Keys(cluster)
	for k, d := range r.data.Discovered {
		if strings.HasPrefix(k, cluster+"/") && d.Problem != "" {
			diags.AddWarning("Node not checked", k+": "+d.Problem)
		}
	}
	if len(keys) == 0 {
		diags.AddAttributeError(pathCluster, "No nodes to check", fmt.Sprintf("cluster %s has no nodes in the provider's inventory: the %s interface cannot be checked", cluster, need.plugin))
		return
	}
	infos, errs := r.data.checks.nodeInfos(ctx, r.data.Fleet, cluster, keys)
	if len(errs) > 0 {
		diags.AddAttributeError(pathCluster, "Nodes did not answer",
			fmt.Sprintf("the attachment is checked on every node of cluster %s before it is written; these did not answer:\n%s", cluster, fleet.Join(errs)))
		return
	}
	var noFeature, noItf []string
	for _, k := range keys {
		if need.feature != "" && !infos[k].GetKernelFeatures()[need.feature] {
			noFeature = append(noFeature, k)
		}
		if need.itf != "" && !hasInterface(infos[k], need.itf) {
			noItf = append(noItf, k)
		}
	}
	if len(noFeature) > 0 {
		diags.AddAttributeError(need.featurePath, "Kernel lacks "+need.feature,
			fmt.Sprintf("the kernel of %s has no %s support (kernel_features of nodenet_nodes), so the %s plugin cannot create the pods' interfaces there; use a type every node supports (macvlan, bridge) or load the kernel module",
				strings.Join(noFeature, ", "), need.feature, need.plugin))
	}
	if len(noItf) > 0 {
		diags.AddAttributeError(need.itfPath, "Interface missing on nodes",
			fmt.Sprintf("%s %q does not exist on %s; it must exist on every node of cluster %s (%d nodes), or pods scheduled there fail to start",
				need.itfRole, need.itf, strings.Join(noItf, ", "), cluster, len(keys)))
	}
}

func hasInterface(ni *pb.NodeInfo, name string) bool {
	for _, itf := range ni.GetInterfaces() {
		if itf.GetName() == name {
			return true
		}
	}
	return false
}
