package provider

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

var (
	_ datasource.DataSource              = &ClusterLinkStatusDataSource{}
	_ datasource.DataSourceWithConfigure = &ClusterLinkStatusDataSource{}
)

// NewClusterLinkStatusDataSource is the nodenet_cluster_link_status data source.
func NewClusterLinkStatusDataSource() datasource.DataSource { return &ClusterLinkStatusDataSource{} }

// ClusterLinkStatusDataSource reports a link's health as its agents measure it: every node
// probes every other node's overlay address through the tunnel (ICMP echo, once a second, as
// Submariner's health checks do), and the answers are rolled up per pair of clusters.
type ClusterLinkStatusDataSource struct {
	data *providerData
}

type linkStatusModel struct {
	Name  types.String `tfsdk:"name"`
	Pairs types.Map    `tfsdk:"pairs"`
	Peers types.List   `tfsdk:"peers"`
}

var (
	pairStatusType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"reachable": types.BoolType, "paths": types.Int64Type, "paths_up": types.Int64Type, "max_rtt_ms": types.Float64Type,
	}}
	peerHealthType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"node": types.StringType, "peer": types.StringType, "peer_ip": types.StringType, "reachable": types.BoolType,
		"rtt_ms": types.Float64Type, "sent": types.Int64Type, "received": types.Int64Type, "error": types.StringType,
	}}
)

func (d *ClusterLinkStatusDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_cluster_link_status"
}

func (d *ClusterLinkStatusDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A `nodenet_cluster_link`'s health as its agents measure it: every node sends an ICMP echo request to every " +
			"other node's overlay address through the link's device once a second (as Submariner's health checks do); a peer is " +
			"reachable when one of its last three probes was answered. `nodenet-agent status` shows one node's view.",
		Attributes: map[string]schema.Attribute{
			"name": schema.StringAttribute{Required: true, MarkdownDescription: "The link's name."},
			"pairs": schema.MapNestedAttribute{
				Computed: true, MarkdownDescription: "By `<cluster>-><cluster>` (every ordered pair of linked clusters): whether every path from a node of the first to a node of the second is up.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"reachable":  schema.BoolAttribute{Computed: true, MarkdownDescription: "Every path is up."},
					"paths":      schema.Int64Attribute{Computed: true, MarkdownDescription: "Node pairs probed."},
					"paths_up":   schema.Int64Attribute{Computed: true, MarkdownDescription: "Node pairs whose probes are answered."},
					"max_rtt_ms": schema.Float64Attribute{Computed: true, MarkdownDescription: "The largest last round-trip time over the paths up, in milliseconds."},
				}},
			},
			"peers": schema.ListNestedAttribute{
				Computed: true, MarkdownDescription: "Every probe path: the probing node, the probed one, and what the probing agent measures.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"node":      schema.StringAttribute{Computed: true, MarkdownDescription: "The probing node, `<cluster>/<node>`."},
					"peer":      schema.StringAttribute{Computed: true, MarkdownDescription: "The probed node."},
					"peer_ip":   schema.StringAttribute{Computed: true, MarkdownDescription: "Its overlay address."},
					"reachable": schema.BoolAttribute{Computed: true, MarkdownDescription: "One of the last three probes was answered."},
					"rtt_ms":    schema.Float64Attribute{Computed: true, MarkdownDescription: "The last round-trip time, in milliseconds."},
					"sent":      schema.Int64Attribute{Computed: true, MarkdownDescription: "Probes decided over the window (the last 10)."},
					"received":  schema.Int64Attribute{Computed: true, MarkdownDescription: "Of those, answered."},
					"error":     schema.StringAttribute{Computed: true, MarkdownDescription: "Why the peer is not reachable (or the agent did not answer); empty when it is."},
				}},
			},
		},
	}
}

func (d *ClusterLinkStatusDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.data = providerDataFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *ClusterLinkStatusDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m linkStatusModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !configuredData(d.data, &resp.Diagnostics) {
		return
	}
	name := m.Name.ValueString()
	lists, errs := d.data.Fleet.List(ctx, d.data.Fleet.Keys(""))
	for _, e := range errs {
		resp.Diagnostics.AddWarning("Node agent did not answer", e.Error())
	}
	id := ""
	var keys []string
	for _, k := range sortedKeys(lists) {
		for _, o := range lists[k] {
			if n, _, ok := linkOfOwner(o.GetOwner()); ok && n == name && o.GetVxlanTunnel() != nil {
				id = o.GetId()
				keys = append(keys, k)
			}
		}
	}
	if len(keys) == 0 {
		resp.Diagnostics.AddAttributeError(path.Root("name"), "Unknown cluster link", fmt.Sprintf("no node has the tunnel of a cluster link named %q", name))
		return
	}
	got, gerrs := d.data.Fleet.Get(ctx, id, keys)
	var peers []attr.Value
	pairs := map[string]*pairTally{}
	for _, e := range gerrs {
		resp.Diagnostics.AddWarning("Node agent did not answer", e.Error())
	}
	for _, k := range keys {
		for _, h := range got[k].GetVxlanTunnel().GetHealth() {
			peers = append(peers, peerHealthValue(k, h))
			tallyPair(pairs, k, h)
		}
	}
	m.Peers = types.ListValueMust(peerHealthType, peers)
	m.Pairs = pairsValue(pairs)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

type pairTally struct {
	paths, up int64
	maxRTT    float64
}

func tallyPair(pairs map[string]*pairTally, node string, h *pb.PeerHealth) {
	from, _, _ := strings.Cut(node, "/")
	to, _, _ := strings.Cut(h.GetNode(), "/")
	if to == "" || to == from {
		return // a node of the same cluster, or a peer without a name: no pair of clusters
	}
	key := from + "->" + to
	t := pairs[key]
	if t == nil {
		t = &pairTally{}
		pairs[key] = t
	}
	t.paths++
	if h.GetReachable() {
		t.up++
		t.maxRTT = max(t.maxRTT, h.GetRttMs())
	}
}

func pairsValue(pairs map[string]*pairTally) types.Map {
	out := map[string]attr.Value{}
	keys := make([]string, 0, len(pairs))
	for k := range pairs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t := pairs[k]
		out[k] = types.ObjectValueMust(pairStatusType.AttrTypes, map[string]attr.Value{
			"reachable": types.BoolValue(t.up == t.paths), "paths": types.Int64Value(t.paths),
			"paths_up": types.Int64Value(t.up), "max_rtt_ms": types.Float64Value(t.maxRTT),
		})
	}
	return types.MapValueMust(pairStatusType, out)
}

func peerHealthValue(node string, h *pb.PeerHealth) attr.Value {
	return types.ObjectValueMust(peerHealthType.AttrTypes, map[string]attr.Value{
		"node": types.StringValue(node), "peer": types.StringValue(h.GetNode()), "peer_ip": types.StringValue(h.GetIp()),
		"reachable": types.BoolValue(h.GetReachable()), "rtt_ms": types.Float64Value(h.GetRttMs()),
		"sent": types.Int64Value(int64(h.GetSent())), "received": types.Int64Value(int64(h.GetReceived())), "error": types.StringValue(h.GetError()),
	})
}
