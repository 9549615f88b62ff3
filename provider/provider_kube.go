package provider

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
	"github.com/nodenet/terraform-provider-nodenet/provider/kube"
	"github.com/nodenet/terraform-provider-nodenet/provider/validators"
)

// kubernetesModel is a cluster's `kubernetes` attribute, named as in hashicorp/kubernetes.
type kubernetesModel struct {
	ConfigPath           types.String `tfsdk:"config_path"`
	ConfigContext        types.String `tfsdk:"config_context"`
	Host                 types.String `tfsdk:"host"`
	Token                types.String `tfsdk:"token"`
	ClusterCACertificate types.String `tfsdk:"cluster_ca_certificate"`
	ClientCertificate    types.String `tfsdk:"client_certificate"`
	ClientKey            types.String `tfsdk:"client_key"`
	Insecure             types.Bool   `tfsdk:"insecure"`
}

// nodesFromKubernetesModel turns on node discovery for a cluster.
type nodesFromKubernetesModel struct {
	AgentPort   types.Int64  `tfsdk:"agent_port"`
	AddressType types.String `tfsdk:"address_type"`
}

// Node address types a Kubernetes node reports.
var nodeAddressTypes = []string{"InternalIP", "ExternalIP", "InternalDNS", "ExternalDNS", "Hostname"}

func kubernetesSchema() schema.SingleNestedAttribute {
	s := func(desc, env string, sensitive bool) schema.StringAttribute {
		return schema.StringAttribute{Optional: true, Sensitive: sensitive, MarkdownDescription: desc + " Falls back to `" + env + "`."}
	}
	attrs := map[string]schema.Attribute{
		"config_path":            schema.StringAttribute{Optional: true, MarkdownDescription: "Path of a kubeconfig file. Falls back to `KUBE_CONFIG_PATH`, then `KUBECONFIG` (one path)."},
		"config_context":         s("Context of the kubeconfig to use; default its current context.", "KUBE_CTX", false),
		"host":                   s("API server URL, like `https://192.168.100.10:6443`; overrides the kubeconfig's.", "KUBE_HOST", false),
		"token":                  s("Bearer token; overrides the kubeconfig's.", "KUBE_TOKEN", true),
		"cluster_ca_certificate": s("PEM of the CA that signed the API server's certificate; overrides the kubeconfig's.", "KUBE_CLUSTER_CA_CERT_DATA", false),
		"client_certificate":     s("PEM client certificate; overrides the kubeconfig's.", "KUBE_CLIENT_CERT_DATA", false),
		"client_key":             s("PEM key of the client certificate; overrides the kubeconfig's.", "KUBE_CLIENT_KEY_DATA", true),
		"insecure":               schema.BoolAttribute{Optional: true, MarkdownDescription: "Skip the verification of the API server's certificate (tests only). Falls back to `KUBE_INSECURE`."},
	}
	return schema.SingleNestedAttribute{
		Optional: true,
		MarkdownDescription: "Access to the cluster's Kubernetes API (network attachments, node discovery), with the names, precedence " +
			"and environment variables of the hashicorp/kubernetes provider: a set attribute wins over the kubeconfig's value, " +
			"and an unset one is read from its environment variable. The environment variables apply to every cluster that has " +
			"a `kubernetes` attribute, so use them with one cluster only. The clients are built once per run.",
		Attributes: attrs,
	}
}

func nodesFromKubernetesSchema() schema.SingleNestedAttribute {
	return schema.SingleNestedAttribute{
		Optional: true,
		MarkdownDescription: "Take the cluster's nodes from its Kubernetes API (needs `kubernetes`): every Node becomes `<cluster>/<node name>`, " +
			"its agent reached at its address of `address_type` and `agent_port`. A node also listed in `nodes` keeps that entry's agent address. " +
			"The list is read once per Terraform run: a node that joins is covered from the next run.",
		Attributes: map[string]schema.Attribute{
			"agent_port": schema.Int64Attribute{
				Optional: true, MarkdownDescription: "Port of the nodes' nodenet-agent, 1 to 65535. Default 7707.",
				Validators: []validator.Int64{validators.Port()},
			},
			"address_type": schema.StringAttribute{
				Optional: true, MarkdownDescription: "Which node address reaches the agent: `InternalIP` (default), `ExternalIP`, `InternalDNS`, `ExternalDNS` or `Hostname`.",
				Validators: []validator.String{stringvalidator.OneOf(nodeAddressTypes...)},
			},
		},
	}
}

// discoveredNode is a node listed by a cluster's API; Problem says why it is not in the
// fleet (no address of the chosen type).
type discoveredNode struct {
	kube.Node
	Typed   bool
	Problem string
}

// configureKube builds the Kubernetes client of every cluster that has a `kubernetes`
// attribute and adds the nodes discovered from the API to the fleet's inventory.
func configureKube(ctx context.Context, clusters map[string]clusterModel, fc *fleet.Config) (map[string]*kube.Client, map[string]*discoveredNode, diag.Diagnostics) {
	var diags diag.Diagnostics
	clients := map[string]*kube.Client{}
	found := map[string]*discoveredNode{}
	for cname, c := range clusters {
		p := path.Root("clusters").AtMapKey(cname)
		if c.Kubernetes == nil {
			if c.NodesFromKubernetes != nil {
				diags.AddAttributeError(p.AtName("nodes_from_kubernetes"), "Missing Kubernetes access", "nodes_from_kubernetes reads the nodes from the cluster's API: set kubernetes too")
			}
			continue
		}
		rc, err := c.Kubernetes.config().WithEnv().REST()
		if err != nil {
			diags.AddAttributeError(p.AtName("kubernetes"), "Invalid Kubernetes access", fmt.Sprintf("cluster %s: %v", cname, err))
			continue
		}
		kc, err := kube.New(rc)
		if err != nil {
			diags.AddAttributeError(p.AtName("kubernetes"), "Invalid Kubernetes access", fmt.Sprintf("cluster %s: %v", cname, err))
			continue
		}
		clients[cname] = kc
		if c.NodesFromKubernetes != nil {
			diags.Append(discover(ctx, cname, c, kc, fc, found)...)
		}
	}
	return clients, found, diags
}

// discover lists the cluster's nodes and adds those the typed inventory lacks to fc.
func discover(ctx context.Context, cname string, c clusterModel, kc *kube.Client, fc *fleet.Config, found map[string]*discoveredNode) diag.Diagnostics {
	var diags diag.Diagnostics
	port, addrType := DefaultAgentPort, "InternalIP"
	if v := c.NodesFromKubernetes.AgentPort; !v.IsNull() && !v.IsUnknown() {
		port = strconv.FormatInt(v.ValueInt64(), 10)
	}
	if v := c.NodesFromKubernetes.AddressType; !v.IsNull() && !v.IsUnknown() {
		addrType = v.ValueString()
	}
	nodes, err := kc.Nodes(ctx)
	if err != nil {
		diags.AddAttributeError(path.Root("clusters").AtMapKey(cname).AtName("nodes_from_kubernetes"), "Cannot list the cluster's nodes", err.Error())
		return diags
	}
	for _, n := range nodes {
		d := &discoveredNode{Node: n}
		found[cname+"/"+n.Name] = d
		if _, typed := c.Nodes[n.Name]; typed {
			d.Typed = true // the typed entry's agent address wins
			continue
		}
		addr := n.Addresses[addrType]
		if addr == "" {
			d.Problem = fmt.Sprintf("the node reports no %s address: its agent cannot be reached (set address_type, or list the node in nodes)", addrType)
			continue
		}
		// The node's own address (BGP source, next hop, router id) is its InternalIP.
		fc.Nodes = append(fc.Nodes, fleet.Node{Cluster: cname, Name: n.Name, Agent: net.JoinHostPort(addr, port), Address: nodeAddress(n.Addresses["InternalIP"], "")})
	}
	return diags
}

func (k *kubernetesModel) config() kube.Config {
	s := func(v types.String) string {
		if v.IsNull() || v.IsUnknown() {
			return ""
		}
		return v.ValueString()
	}
	c := kube.Config{
		ConfigPath: s(k.ConfigPath), ConfigContext: s(k.ConfigContext), Host: s(k.Host), Token: s(k.Token),
		ClusterCACertificate: s(k.ClusterCACertificate), ClientCertificate: s(k.ClientCertificate), ClientKey: s(k.ClientKey),
	}
	if !k.Insecure.IsNull() && !k.Insecure.IsUnknown() {
		b := k.Insecure.ValueBool()
		c.Insecure = &b
	}
	return c
}
