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
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
)

var (
	_ datasource.DataSource              = &BgpStatusDataSource{}
	_ datasource.DataSourceWithConfigure = &BgpStatusDataSource{}
)

// NewBgpStatusDataSource is the nodenet_bgp_status data source.
func NewBgpStatusDataSource() datasource.DataSource { return &BgpStatusDataSource{} }

// BgpStatusDataSource reports every node's BGP speaker and sessions as its agent sees
// them: what `calicoctl node status` shows, for the whole fleet at once.
type BgpStatusDataSource struct {
	data *providerData
}

type bgpStatusModel struct {
	Cluster  types.String `tfsdk:"cluster"`
	Nodes    types.Set    `tfsdk:"nodes"`
	Speakers types.Map    `tfsdk:"speakers"`
}

func (d *BgpStatusDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_bgp_status"
}

func (d *BgpStatusDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Every node's BGP speaker as its agent sees it: state, AS, router id and each session's peer, " +
			"type, state, time of the last state change and routes received and advertised. What `calicoctl node status` " +
			"(or `nodenet-agent status --bgp` on one node) shows, for the whole fleet. A node whose agent does not answer " +
			"is listed with the reason in `error`, with a warning, rather than failing the read.",
		Attributes: map[string]schema.Attribute{
			"cluster": schema.StringAttribute{Optional: true, MarkdownDescription: "Only this cluster's nodes (default: every cluster)."},
			"nodes": schema.SetAttribute{
				Optional: true, ElementType: types.StringType,
				MarkdownDescription: "Only these nodes (names, in `cluster` or in any cluster when it is not set).",
			},
			"speakers": schema.MapNestedAttribute{
				Computed: true, MarkdownDescription: "By `<cluster>/<node>`.",
				NestedObject: schema.NestedAttributeObject{Attributes: speakerStatusAttributes()},
			},
		},
	}
}

func speakerStatusAttributes() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"cluster":          schema.StringAttribute{Computed: true, MarkdownDescription: "Cluster name."},
		"name":             schema.StringAttribute{Computed: true, MarkdownDescription: "Node name."},
		"error":            schema.StringAttribute{Computed: true, MarkdownDescription: "Why the node's speaker could not be read (agent unreachable, or its error); empty when it was."},
		"configured":       schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether the node has a speaker (a `nodenet_bgp_config` names it)."},
		"state":            schema.StringAttribute{Computed: true, MarkdownDescription: "`running`, or why the speaker does not run; empty when not configured."},
		"asn":              schema.Int64Attribute{Computed: true, MarkdownDescription: "AS number the speaker runs with."},
		"router_id":        schema.StringAttribute{Computed: true, MarkdownDescription: "Router id the speaker runs with (the node's address unless set)."},
		"routes_installed": schema.Int64Attribute{Computed: true, MarkdownDescription: "Routes learned from peers that are in the node's kernel."},
		"conflicts": schema.ListAttribute{
			Computed: true, ElementType: types.StringType,
			MarkdownDescription: "Learned routes left out of the kernel because a route nodenet does not own is there.",
		},
		"peers": schema.ListNestedAttribute{
			Computed: true, MarkdownDescription: "The speaker's sessions, by peer address.",
			NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
				"address":    schema.StringAttribute{Computed: true, MarkdownDescription: "Peer address."},
				"type":       schema.StringAttribute{Computed: true, MarkdownDescription: "`mesh` (node-to-node mesh), `explicit` (a `nodenet_bgp_peer`), `rr-client` (a client of this node, a route reflector) or `rr` (a reflector this node is a client of)."},
				"asn":        schema.Int64Attribute{Computed: true, MarkdownDescription: "Peer AS."},
				"state":      schema.StringAttribute{Computed: true, MarkdownDescription: "BGP state: `Established`, `Active`, `Idle`, `Connect`, `OpenSent` or `OpenConfirm`."},
				"since":      schema.StringAttribute{Computed: true, MarkdownDescription: "Time of the last state change (RFC 3339, UTC); empty when the speaker has none."},
				"received":   schema.Int64Attribute{Computed: true, MarkdownDescription: "Routes received from the peer."},
				"advertised": schema.Int64Attribute{Computed: true, MarkdownDescription: "Routes advertised to the peer (0 unless Established)."},
				"node":       schema.StringAttribute{Computed: true, MarkdownDescription: "The peer's node name when it is a nodenet node."},
			}},
		},
	}
}

func (d *BgpStatusDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.data = providerDataFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *BgpStatusDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m bgpStatusModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if d.data == nil {
		resp.Diagnostics.AddError("Provider not configured", "nodenet_bgp_status needs the provider's clusters and tls")
		return
	}
	var names []string
	if !m.Nodes.IsNull() {
		resp.Diagnostics.Append(m.Nodes.ElementsAs(ctx, &names, false)...)
	}
	keys, attrPath, err := statusKeys(d.data.Fleet, m.Cluster.ValueString(), names)
	if err != nil {
		resp.Diagnostics.AddAttributeError(attrPath, "Unknown node or cluster", err.Error())
		return
	}
	observed, errs := d.data.Fleet.Get(ctx, pb.ObjectID(pb.KindBgpSpeaker, pb.SpeakerName), keys)
	failed := map[string]string{}
	for _, e := range errs {
		failed[e.Node] = e.Error()
		resp.Diagnostics.AddWarning("Node agent did not answer", e.Error())
	}
	speakers := map[string]attr.Value{}
	for _, k := range keys {
		n, _ := d.data.Fleet.Node(k)
		speakers[k] = speakerStatusValue(n, observed[k].GetBgpSpeaker(), failed[k])
	}
	m.Speakers = types.MapValueMust(speakerStatusType, speakers)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// statusKeys are the nodes to ask: the cluster's (or every cluster's) nodes, only those
// named when names are given. A cluster or name that matches nothing is an error (a typo
// would otherwise read as "no speakers"), with the attribute to blame.
func statusKeys(f *fleet.Fleet, cluster string, names []string) ([]string, path.Path, error) {
	all := f.Keys(cluster)
	if len(all) == 0 {
		return nil, path.Root("cluster"), fmt.Errorf("%q is not configured (clusters: %s)", cluster, strings.Join(f.Clusters(), ", "))
	}
	if len(names) == 0 {
		return all, path.Empty(), nil
	}
	byName := map[string][]string{}
	for _, k := range all {
		byName[nodeName(k)] = append(byName[nodeName(k)], k)
	}
	var keys []string
	for _, n := range names {
		if len(byName[n]) == 0 {
			return nil, path.Root("nodes"), fmt.Errorf("no node %q in %s", n, clusterWords(cluster))
		}
		keys = append(keys, byName[n]...)
	}
	sort.Strings(keys)
	return keys, path.Empty(), nil
}

func clusterWords(cluster string) string {
	if cluster == "" {
		return "any cluster"
	}
	return "cluster " + cluster
}
