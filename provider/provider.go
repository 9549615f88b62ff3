// Package provider is terraform-provider-nodenet: Terraform resources for Kubernetes node
// networking, applied by nodenet-agent on every node over gRPC with mTLS.
package provider

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/nodenet/terraform-provider-nodenet/internal/tlsconf"
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
	"github.com/nodenet/terraform-provider-nodenet/provider/kube"
	"github.com/nodenet/terraform-provider-nodenet/provider/validators"
)

var _ provider.Provider = &NodenetProvider{}

// NodenetProvider is the provider; version is set at build time.
type NodenetProvider struct {
	version string
}

// New returns the provider factory that main and the acceptance tests serve.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &NodenetProvider{version: version} }
}

type providerModel struct {
	TLS         *tlsModel               `tfsdk:"tls"`
	Clusters    map[string]clusterModel `tfsdk:"clusters"`
	Parallelism types.Int64             `tfsdk:"parallelism"`
	Timeout     types.String            `tfsdk:"timeout"`
}

type tlsModel struct {
	CACert     types.String `tfsdk:"ca_cert"`
	ClientCert types.String `tfsdk:"client_cert"`
	ClientKey  types.String `tfsdk:"client_key"`
}

type clusterModel struct {
	Nodes               map[string]nodeModel      `tfsdk:"nodes"`
	Kubernetes          *kubernetesModel          `tfsdk:"kubernetes"`
	NodesFromKubernetes *nodesFromKubernetesModel `tfsdk:"nodes_from_kubernetes"`
}

type nodeModel struct {
	Agent   types.String `tfsdk:"agent"`
	Address types.String `tfsdk:"address"`
}

func (p *NodenetProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "nodenet"
	resp.Version = p.version
}

func (p *NodenetProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "nodenet configures Kubernetes node networking (VXLAN overlays, and later BGP, IP pools, " +
			"network attachments and cluster links) through `nodenet-agent` on every node, over gRPC with mutual TLS. " +
			"Every node is named `<cluster>/<node>`.",
		Attributes: map[string]schema.Attribute{
			"tls": schema.SingleNestedAttribute{
				Optional:            true,
				MarkdownDescription: "Mutual TLS material, each as PEM content or a file path. Falls back to `NODENET_CA_CERT`, `NODENET_CLIENT_CERT` and `NODENET_CLIENT_KEY`. Agents must present a certificate from this CA carrying the URI SAN `nodenet://<cluster>/<node>` of the node they serve.",
				Attributes: map[string]schema.Attribute{
					"ca_cert":     schema.StringAttribute{Optional: true, MarkdownDescription: "CA certificate that signed the agents' certificates (PEM or path)."},
					"client_cert": schema.StringAttribute{Optional: true, MarkdownDescription: "Client certificate presented to the agents (PEM or path)."},
					"client_key":  schema.StringAttribute{Optional: true, Sensitive: true, MarkdownDescription: "Private key of the client certificate (PEM or path)."},
				},
			},
			"clusters": schema.MapNestedAttribute{
				Required:            true,
				MarkdownDescription: "The inventory: clusters by name, each with its nodes by name. Resources refer to nodes as `<cluster>/<node>`.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"kubernetes":            kubernetesSchema(),
					"nodes_from_kubernetes": nodesFromKubernetesSchema(),
					"nodes": schema.MapNestedAttribute{
						Optional:            true,
						MarkdownDescription: "Nodes by name (the Kubernetes node name). Required unless `nodes_from_kubernetes` is set.",
						NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
							"agent": schema.StringAttribute{Required: true, MarkdownDescription: "Address of the node's nodenet-agent, `host:port` (default port 7707)."},
							"address": schema.StringAttribute{
								Optional: true,
								MarkdownDescription: "The node's own IPv4 address on the network its peers reach it on: the source of its BGP sessions, " +
									"the next hop of its pod blocks and its default router id. Default: the host of `agent` when that is an IPv4 address other than loopback.",
								Validators: []validator.String{validators.IPv4()},
							},
						}},
					},
				}},
			},
			"parallelism": schema.Int64Attribute{
				Optional: true, MarkdownDescription: "How many agents are called at once, 1 to 1024. Default 16.",
				Validators: []validator.Int64{int64validator.Between(1, 1024)},
			},
			"timeout": schema.StringAttribute{
				Optional: true, MarkdownDescription: "Time limit of one call to one agent, as a Go duration. Default `30s`.",
				Validators: []validator.String{validators.Duration()},
			},
		},
	}
}

func (p *NodenetProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	pem := func(attr string, v types.String, env string) []byte {
		s := os.Getenv(env)
		if !v.IsNull() && !v.IsUnknown() {
			s = v.ValueString()
		}
		if s == "" {
			resp.Diagnostics.AddAttributeError(path.Root("tls").AtName(attr), "Missing TLS material",
				fmt.Sprintf("tls.%s is required (PEM content or a file path), or set %s. Agents accept only mutual TLS.", attr, env))
			return nil
		}
		b, err := tlsconf.ReadPEM(s)
		if err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("tls").AtName(attr), "Unreadable TLS material", err.Error())
			return nil
		}
		return b
	}
	t := cfg.TLS
	if t == nil {
		t = &tlsModel{CACert: types.StringNull(), ClientCert: types.StringNull(), ClientKey: types.StringNull()}
	}
	fc := fleet.Config{
		CACert:     pem("ca_cert", t.CACert, "NODENET_CA_CERT"),
		ClientCert: pem("client_cert", t.ClientCert, "NODENET_CLIENT_CERT"),
		ClientKey:  pem("client_key", t.ClientKey, "NODENET_CLIENT_KEY"),
	}
	// The schema's validators refused bad values before Configure runs.
	if !cfg.Parallelism.IsNull() && !cfg.Parallelism.IsUnknown() {
		fc.Parallelism = int(cfg.Parallelism.ValueInt64())
	}
	if !cfg.Timeout.IsNull() && !cfg.Timeout.IsUnknown() {
		fc.Timeout, _ = time.ParseDuration(cfg.Timeout.ValueString())
	}
	for cname, c := range cfg.Clusters {
		if cname == "" || containsSlash(cname) {
			resp.Diagnostics.AddAttributeError(path.Root("clusters").AtMapKey(cname), "Invalid cluster name", "a cluster name is non-empty and has no '/'")
		}
		for nname, n := range c.Nodes {
			if nname == "" || containsSlash(nname) {
				resp.Diagnostics.AddAttributeError(path.Root("clusters").AtMapKey(cname).AtName("nodes").AtMapKey(nname), "Invalid node name", "a node name is non-empty and has no '/'")
			}
			addr, err := agentAddress(n.Agent.ValueString())
			if err != nil {
				resp.Diagnostics.AddAttributeError(path.Root("clusters").AtMapKey(cname).AtName("nodes").AtMapKey(nname).AtName("agent"), "Invalid agent address", err.Error())
				continue
			}
			fc.Nodes = append(fc.Nodes, fleet.Node{Cluster: cname, Name: nname, Agent: addr, Address: nodeAddress(n.Address.ValueString(), addr)})
		}
	}
	kc, discovered, d := configureKube(ctx, cfg.Clusters, &fc)
	resp.Diagnostics.Append(d...)
	for cname, c := range cfg.Clusters {
		if len(c.Nodes) == 0 && c.NodesFromKubernetes == nil {
			resp.Diagnostics.AddAttributeError(path.Root("clusters").AtMapKey(cname).AtName("nodes"), "Missing nodes",
				"cluster "+cname+" needs nodes, or nodes_from_kubernetes to take them from its API")
		}
	}
	if resp.Diagnostics.HasError() {
		return
	}
	f, err := fleet.New(fc)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("clusters"), "Invalid inventory", err.Error())
		return
	}
	pd := &providerData{Fleet: f, replacing: newReplacing(), pools: newPoolClaims(), Kube: kc, Discovered: discovered}
	resp.ResourceData = pd
	resp.DataSourceData = pd
}

// nodeAddress is the node's address: the one given, else the agent's host when it is an
// IPv4 address other than loopback ("" when unknown: BGP resources then refuse the node).
func nodeAddress(given, agent string) string {
	if given != "" {
		return given
	}
	host, _, err := net.SplitHostPort(agent)
	if err != nil {
		return ""
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Is4() || a.IsLoopback() {
		return ""
	}
	return a.String()
}

// providerData is what Configure hands every resource and data source: the agents now;
// the Kubernetes clients and the discovered inventory will join it.
type providerData struct {
	// Fleet reaches every configured node's agent.
	Fleet *fleet.Fleet
	// replacing are the owners whose objects a replacement planned in this run takes over.
	replacing *replacing
	// pools are the IP pools planned in this run, by cluster.
	pools *poolClaims
	// Kube is the Kubernetes client of every cluster with a kubernetes attribute, by name.
	Kube map[string]*kube.Client
	// Discovered are the nodes read from the clusters' APIs, by "<cluster>/<node>".
	Discovered map[string]*discoveredNode
	// checks are the node and namespace answers the attachments' plans share in this run.
	checks clusterChecks
}

// replacing remembers, within one run of the provider, the owners of resources that are
// being replaced, by object id. Terraform plans a replacement (forced by a change, or of a
// tainted resource) as the create of a new resource, without the old one's state: the
// create's dry run would find the old resource's objects and refuse them as another
// resource's. The old one is seen first in the same run (its plan, or the refresh of a
// tainted one), so its owner is noted here and the create's dry run runs as it.
type replacing struct {
	mu     sync.Mutex
	owners map[string]string
}

func newReplacing() *replacing { return &replacing{owners: map[string]string{}} }

func (r *replacing) note(id, owner string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.owners[id] = owner
}

func (r *replacing) owner(id string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o, ok := r.owners[id]
	return o, ok
}

// DefaultAgentPort is where nodenet-agent listens unless told otherwise.
const DefaultAgentPort = "7707"

// agentAddress checks an agent address and adds the default port when it has none.
func agentAddress(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("an agent address is required: host:port, like 192.168.0.21:7707")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port: "192.168.0.21", "node1.example" or "[fd00::1]".
		host, port = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), DefaultAgentPort
	}
	if host == "" || strings.ContainsAny(host, " /") {
		return "", fmt.Errorf("%q is not host:port, like 192.168.0.21:7707", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%q: port %q is not 1 to 65535", s, port)
	}
	return net.JoinHostPort(host, port), nil
}

// providerDataFrom is the data the provider's Configure handed to resources and data
// sources; nil before the provider is configured (validation runs before that).
func providerDataFrom(data any, diags *diag.Diagnostics) *providerData {
	if data == nil {
		return nil
	}
	pd, ok := data.(*providerData)
	if !ok {
		diags.AddError("Unexpected provider data", fmt.Sprintf("expected *providerData, got %T: this is a bug in the provider", data))
	}
	return pd
}

func containsSlash(s string) bool {
	for _, r := range s {
		if r == '/' {
			return true
		}
	}
	return false
}

func (p *NodenetProvider) Resources(_ context.Context) []func() resource.Resource {
	return []func() resource.Resource{NewVxlanTunnelResource, NewIPPoolResource, NewBGPConfigResource, NewBGPPeerResource,
		NewRouteReflectorResource, NewNetworkAttachmentResource, NewClusterLinkResource}
}

func (p *NodenetProvider) DataSources(_ context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{NewNodesDataSource, NewBgpStatusDataSource, NewClusterLinkStatusDataSource}
}
