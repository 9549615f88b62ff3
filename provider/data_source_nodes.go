package provider

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
)

var (
	_ datasource.DataSource              = &NodesDataSource{}
	_ datasource.DataSourceWithConfigure = &NodesDataSource{}
)

// NewNodesDataSource is the nodenet_nodes data source.
func NewNodesDataSource() datasource.DataSource { return &NodesDataSource{} }

// NodesDataSource reports the inventory as the agents see it: identity, version and
// capabilities, kernel features, interfaces and the objects each node's agent manages.
type NodesDataSource struct {
	data *providerData
}

type nodesModel struct {
	Cluster   types.String `tfsdk:"cluster"`
	Nodes     types.Map    `tfsdk:"nodes"`
	Uncovered types.List   `tfsdk:"uncovered"`
}

var (
	interfaceType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"index": types.Int64Type, "mtu": types.Int64Type, "mac": types.StringType,
		"addresses": types.ListType{ElemType: types.StringType}, "oper_state": types.StringType,
		"kind": types.StringType, "owner": types.StringType,
	}}
	nodeInfoType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"cluster": types.StringType, "name": types.StringType, "agent": types.StringType,
		"reachable": types.BoolType, "error": types.StringType,
		"agent_version": types.StringType, "capabilities": types.ListType{ElemType: types.StringType},
		"kernel_release": types.StringType, "kernel_features": types.MapType{ElemType: types.BoolType},
		"boot_id": types.StringType, "interfaces": types.MapType{ElemType: interfaceType},
		"managed_objects": types.ListType{ElemType: types.StringType},
		"problems":        types.ListType{ElemType: types.StringType},
		"unexplained":     types.ListType{ElemType: types.StringType},
		"source":          types.StringType,
		"addresses":       types.MapType{ElemType: types.StringType},
		"pod_cidrs":       types.ListType{ElemType: types.StringType},
		"labels":          types.MapType{ElemType: types.StringType},
	}}
)

func (d *NodesDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_nodes"
}

func (d *NodesDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The provider's inventory as the nodes' agents report it: agent version and capabilities, " +
			"kernel release and features (link kinds found by probing in a scratch namespace: a feature a resource needs " +
			"and the kernel lacks is a plan-time error of that resource), interfaces with their addresses, and the objects " +
			"each agent manages. `uncovered` lists the nodes no nodenet resource reaches yet.",
		Attributes: map[string]schema.Attribute{
			"cluster": schema.StringAttribute{Optional: true, MarkdownDescription: "Only this cluster's nodes."},
			"nodes": schema.MapNestedAttribute{
				Computed:            true,
				MarkdownDescription: "By `<cluster>/<node>`. A node whose agent does not answer has `reachable = false` and the reason in `error`.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"cluster":         schema.StringAttribute{Computed: true, MarkdownDescription: "Cluster name."},
					"name":            schema.StringAttribute{Computed: true, MarkdownDescription: "Node name."},
					"agent":           schema.StringAttribute{Computed: true, MarkdownDescription: "Agent address."},
					"reachable":       schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether the agent answered (over mutual TLS, with this node's identity)."},
					"error":           schema.StringAttribute{Computed: true, MarkdownDescription: "Why the agent did not answer; empty when it did."},
					"agent_version":   schema.StringAttribute{Computed: true, MarkdownDescription: "nodenet-agent version."},
					"capabilities":    schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Contract features the agent implements."},
					"kernel_release":  schema.StringAttribute{Computed: true, MarkdownDescription: "Kernel release (`uname -r`)."},
					"kernel_features": schema.MapAttribute{Computed: true, ElementType: types.BoolType, MarkdownDescription: "Link kinds the kernel supports: vxlan, macvlan, bridge, veth, ipip, gre, geneve, ipvlan, dummy, vrf, wireguard."},
					"boot_id":         schema.StringAttribute{Computed: true, MarkdownDescription: "The node's boot id: it changes when the node reboots."},
					"interfaces": schema.MapNestedAttribute{
						Computed: true, MarkdownDescription: "Network interfaces by name.",
						NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
							"index":      schema.Int64Attribute{Computed: true, MarkdownDescription: "Interface index."},
							"mtu":        schema.Int64Attribute{Computed: true, MarkdownDescription: "MTU."},
							"mac":        schema.StringAttribute{Computed: true, MarkdownDescription: "MAC address."},
							"addresses":  schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "IPv4 addresses with prefix length, primary first."},
							"oper_state": schema.StringAttribute{Computed: true, MarkdownDescription: "`up` or `down`."},
							"kind":       schema.StringAttribute{Computed: true, MarkdownDescription: "Link kind (veth, vxlan, bridge, ...)."},
							"owner":      schema.StringAttribute{Computed: true, MarkdownDescription: "`nodenet:<object id>` when nodenet owns the link."},
						}},
					},
					"managed_objects": schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Ids of the objects the agent manages, like `vxlan_tunnel/vxlan-test`."},
					"problems": schema.ListAttribute{
						Computed: true, ElementType: types.StringType,
						MarkdownDescription: "Managed objects that need an operator's eye, `<id>: <problem>: <what to do>`: `interrupted` (the agent stopped during an apply: the next apply finishes it, a destroy removes it) or `replay_failed` (restoring it after a reboot failed; retried at the next agent start, repaired by the next apply).",
					},
					"unexplained": schema.ListAttribute{
						Computed: true, ElementType: types.StringType,
						MarkdownDescription: "Kernel entries marked as nodenet's (ifalias `nodenet:...`, route protocol 147) that no managed object explains, `<entry> <key> <detail> (names <object id>)`: left by a lost state dir. An apply of the object they name takes them over; its destroy removes them.",
					},
					"source":    schema.StringAttribute{Computed: true, MarkdownDescription: "Where the node comes from: `provider` (the cluster's `nodes`), `kubernetes` (`nodes_from_kubernetes`), or `provider+kubernetes` (both; the provider's agent address wins)."},
					"addresses": schema.MapAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "The node's addresses by type (`InternalIP`, `Hostname`, ...) as its Kubernetes Node reports them; empty for a node only in `nodes`."},
					"pod_cidrs": schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "The Node's `spec.podCIDRs`."},
					"labels":    schema.MapAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "The Node's labels."},
				}},
			},
			"uncovered": schema.ListAttribute{
				Computed: true, ElementType: types.StringType,
				MarkdownDescription: "Nodes (`<cluster>/<node>`) whose agent answered and manages no object: a node that joined since the last apply gets nothing until a resource names it.",
			},
		},
	}
}

func (d *NodesDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.data = providerDataFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *NodesDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m nodesModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if d.data == nil {
		resp.Diagnostics.AddError("Provider not configured", "nodenet_nodes needs the provider's clusters and tls")
		return
	}
	f := d.data.Fleet
	keys := f.Keys(m.Cluster.ValueString())
	unreachable := unreachableDiscovered(d.data, m.Cluster.ValueString())
	keys = append(keys, keysOf(unreachable)...)
	if len(keys) == 0 {
		resp.Diagnostics.AddAttributeError(path.Root("cluster"), "Unknown cluster",
			fmt.Sprintf("%q is not configured (clusters: %s)", m.Cluster.ValueString(), strings.Join(f.Clusters(), ", ")))
		return
	}
	type answer struct {
		info    *pb.NodeInfo
		objects []string
	}
	var mu sync.Mutex
	answers := map[string]answer{}
	errs := f.Each(ctx, f.Keys(m.Cluster.ValueString()), func(ctx context.Context, key string, c pb.NodeAgentClient) error {
		ni, err := c.Info(ctx, &pb.InfoRequest{})
		if err != nil {
			return err
		}
		list, err := c.List(ctx, &pb.ListRequest{})
		if err != nil {
			return err
		}
		var ids []string
		for _, o := range list.GetObjects() {
			ids = append(ids, o.GetId())
		}
		sort.Strings(ids)
		mu.Lock()
		answers[key] = answer{ni, ids}
		mu.Unlock()
		return nil
	})
	failed := unreachable
	for _, e := range errs {
		failed[e.Node] = e.Error()
		resp.Diagnostics.AddWarning("Node agent did not answer", e.Error())
	}
	nodes := map[string]attr.Value{}
	uncovered := []string{}
	for _, key := range keys {
		n, ok := f.Node(key)
		if !ok {
			n.Cluster, n.Name, _ = strings.Cut(key, "/")
		}
		a := answers[key]
		nodes[key] = withDiscovered(nodeValue(n, a.info, a.objects, failed[key]), d.data.Discovered[key], ok)
		if failed[key] == "" && len(a.objects) == 0 {
			uncovered = append(uncovered, key)
		}
	}
	m.Nodes = types.MapValueMust(nodeInfoType, nodes)
	ul, diags := types.ListValueFrom(ctx, types.StringType, uncovered)
	resp.Diagnostics.Append(diags...)
	m.Uncovered = ul
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func stringsValue(ss []string) types.List {
	vals := make([]attr.Value, 0, len(ss))
	for _, s := range ss {
		vals = append(vals, types.StringValue(s))
	}
	return types.ListValueMust(types.StringType, vals)
}

// nodeValue is one node's entry; ni is nil when the agent did not answer.
func nodeValue(n fleet.Node, ni *pb.NodeInfo, objects []string, failure string) attr.Value {
	features := map[string]attr.Value{}
	itfs := map[string]attr.Value{}
	for k, v := range ni.GetKernelFeatures() {
		features[k] = types.BoolValue(v)
	}
	for _, itf := range ni.GetInterfaces() {
		itfs[itf.GetName()] = types.ObjectValueMust(interfaceType.AttrTypes, map[string]attr.Value{
			"index": types.Int64Value(int64(itf.GetIndex())), "mtu": types.Int64Value(int64(itf.GetMtu())),
			"mac": types.StringValue(itf.GetMac()), "addresses": stringsValue(itf.GetAddresses()),
			"oper_state": types.StringValue(itf.GetOperState()), "kind": types.StringValue(itf.GetKind()),
			"owner": types.StringValue(itf.GetOwner()),
		})
	}
	return types.ObjectValueMust(nodeInfoType.AttrTypes, map[string]attr.Value{
		"cluster": types.StringValue(n.Cluster), "name": types.StringValue(n.Name), "agent": types.StringValue(n.Agent),
		"reachable": types.BoolValue(failure == ""), "error": types.StringValue(failure),
		"agent_version": types.StringValue(ni.GetAgentVersion()), "capabilities": stringsValue(ni.GetCapabilities()),
		"kernel_release":  types.StringValue(ni.GetKernelRelease()),
		"kernel_features": types.MapValueMust(types.BoolType, features),
		"boot_id":         types.StringValue(ni.GetBootId()),
		"interfaces":      types.MapValueMust(interfaceType, itfs),
		"managed_objects": stringsValue(objects),
		"problems":        stringsValue(problemStrings(ni)),
		"unexplained":     stringsValue(unexplainedStrings(ni)),
		"source":          types.StringValue("provider"),
		"addresses":       types.MapValueMust(types.StringType, map[string]attr.Value{}),
		"pod_cidrs":       stringsValue(nil),
		"labels":          types.MapValueMust(types.StringType, map[string]attr.Value{}),
	})
}

func problemStrings(ni *pb.NodeInfo) []string {
	var out []string
	for _, p := range ni.GetProblems() {
		out = append(out, p.GetId()+": "+p.GetProblem()+": "+p.GetDetail())
	}
	return out
}

func unexplainedStrings(ni *pb.NodeInfo) []string {
	var out []string
	for _, u := range ni.GetUnexplained() {
		s := u.GetEntry() + " " + u.GetKey() + " " + u.GetDetail()
		if u.GetObjectId() != "" {
			s += " (names " + u.GetObjectId() + ")"
		}
		out = append(out, s)
	}
	return out
}
