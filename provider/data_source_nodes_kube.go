package provider

import (
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// unreachableDiscovered are the nodes a cluster's API lists that are not in the fleet (no
// address to reach their agent), with the reason, for nodenet_nodes to show.
func unreachableDiscovered(pd *providerData, cluster string) map[string]string {
	out := map[string]string{}
	for k, d := range pd.Discovered {
		if d.Problem != "" && (cluster == "" || strings.HasPrefix(k, cluster+"/")) {
			out[k] = d.Problem
		}
	}
	return out
}

// withDiscovered adds what the node's Kubernetes Node says to its nodenet_nodes entry; inFleet
// tells whether the node is in the provider's inventory (typed or discovered with an address).
func withDiscovered(v attr.Value, d *discoveredNode, inFleet bool) attr.Value {
	if d == nil {
		return v
	}
	obj := v.(types.Object)
	attrs := obj.Attributes()
	src := "kubernetes"
	if d.Typed {
		src = "provider+kubernetes"
	}
	attrs["source"] = types.StringValue(src)
	attrs["addresses"] = stringMapValue(d.Addresses)
	attrs["pod_cidrs"] = stringsValue(d.PodCIDRs)
	attrs["labels"] = stringMapValue(d.Labels)
	if !inFleet {
		attrs["agent"] = types.StringValue("")
	}
	return types.ObjectValueMust(nodeInfoType.AttrTypes, attrs)
}

func stringMapValue(m map[string]string) types.Map {
	vals := map[string]attr.Value{}
	for k, v := range m {
		vals[k] = types.StringValue(v)
	}
	return types.MapValueMust(types.StringType, vals)
}
