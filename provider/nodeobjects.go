package provider

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
)

// The cluster-scoped resources (pools, BGP configuration, peers, reflectors) are one object
// per node with one id; these helpers apply, read and delete such a set. A failed apply is
// rolled back to prev on every node that took it (deleted where prev has nothing), so a
// failure leaves the nodes as they were.

// applyNodeObjects applies objs; on failure it rolls back and reports, naming the nodes.
func applyNodeObjects(ctx context.Context, f *fleet.Fleet, what string, objs, prev fleet.Objects, diags *diag.Diagnostics) map[string]*pb.Object {
	res := f.Apply(ctx, objs, func(key string) *pb.Object { return prev[key] })
	out := map[string]*pb.Object{}
	for k, a := range res.Answers {
		out[k] = a.GetObserved()
	}
	if res.OK() {
		return out
	}
	msg := fmt.Sprintf("%s failed on %d of %d nodes:\n%s", what, len(res.Failed), len(objs), fleet.Join(res.Failed))
	if len(res.RolledBack) > 0 {
		msg += fmt.Sprintf("\n\nRolled back on: %s.", strings.Join(res.RolledBack, ", "))
	}
	if len(res.Uncertain) > 0 {
		msg += fmt.Sprintf("\n\nThese nodes did not answer in time and may hold the change; the next plan reads them:\n%s", fleet.Join(res.Uncertain))
	}
	diags.AddError(what+" failed", msg)
	return nil
}

// replaceNodeObjects is an update: objs applied (rolled back to prev on failure), and the
// objects of the nodes prev has and objs has not deleted.
func replaceNodeObjects(ctx context.Context, f *fleet.Fleet, what string, objs, prev fleet.Objects, diags *diag.Diagnostics) map[string]*pb.Object {
	observed := applyNodeObjects(ctx, f, what, objs, prev, diags)
	if diags.HasError() {
		return nil
	}
	var gone []string
	var id, owner string
	for k, o := range prev {
		if _, ok := objs[k]; !ok {
			gone = append(gone, k)
			id, owner = o.GetId(), o.GetOwner()
		}
	}
	if len(gone) > 0 {
		sort.Strings(gone)
		deleteNodeObjects(ctx, f, what+" (nodes no longer selected)", id, owner, gone, diags)
	}
	return observed
}

// deleteNodeObjects deletes id as owner from the nodes.
func deleteNodeObjects(ctx context.Context, f *fleet.Fleet, what, id, owner string, keys []string, diags *diag.Diagnostics) {
	others, errs := f.Delete(ctx, id, owner, keys)
	if len(errs) > 0 {
		diags.AddError(what+" not removed", fmt.Sprintf("removing %s failed on:\n%s", id, fleet.Join(errs)))
	}
	for _, k := range sortedKeys(others) {
		diags.AddWarning("Left to its new owner", fmt.Sprintf("%s: %s is managed by %s now (imported); it was left in place.", k, id, others[k]))
	}
}

// readNodeObjects reads id from the nodes: observed objects of this owner by node, the nodes
// that do not have it (or have another owner's), and warnings for nodes that did not answer
// (they keep their last known state).
func readNodeObjects(ctx context.Context, f *fleet.Fleet, id, owner string, keys []string, diags *diag.Diagnostics) (observed map[string]*pb.Object, missing, down []string) {
	got, errs := f.Get(ctx, id, keys)
	observed = map[string]*pb.Object{}
	for _, k := range sortedKeys(got) {
		o := got[k]
		switch {
		case o == nil:
			missing = append(missing, k)
		case o.GetOwner() != "" && o.GetOwner() != owner:
			missing = append(missing, k)
			diags.AddWarning("Managed by another resource", fmt.Sprintf("%s: %s is managed by %s now; this resource plans it as absent there.", k, id, o.GetOwner()))
		default:
			observed[k] = o
		}
	}
	for _, e := range errs {
		down = append(down, e.Node)
		diags.AddWarning("Node agent did not answer", fmt.Sprintf("%s: %v; its last known state is kept.", e.Node, e.Err))
	}
	sort.Strings(missing)
	return observed, missing, down
}

// clusterNodes resolves a resource's nodes: the given node names of the cluster, or every
// node of the cluster when none are given. Unknown names are errors on attr.
func clusterNodes(ctx context.Context, f *fleet.Fleet, cluster string, given types.Set, attr string, diags *diag.Diagnostics) []string {
	all := f.Keys(cluster)
	if len(all) == 0 {
		diags.AddError("Unknown cluster", fmt.Sprintf("cluster: %q is not in the provider's inventory (clusters: %s)", cluster, strings.Join(f.Clusters(), ", ")))
		return nil
	}
	if given.IsNull() || given.IsUnknown() {
		return all
	}
	var names []string
	diags.Append(given.ElementsAs(ctx, &names, false)...)
	var keys []string
	for _, n := range names {
		k := cluster + "/" + n
		if _, ok := f.Node(k); !ok {
			diags.AddError("Unknown node", fmt.Sprintf("%s: node %q is not in cluster %q of the provider's inventory (nodes: %s)", attr, n, cluster, strings.Join(nodeNames(all), ", ")))
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func nodeNames(keys []string) []string {
	var out []string
	for _, k := range keys {
		_, n, _ := strings.Cut(k, "/")
		out = append(out, n)
	}
	return out
}

// nodeName is the node part of a node key.
func nodeName(key string) string {
	_, n, _ := strings.Cut(key, "/")
	return n
}

// perNodeModel is the model of a resource made of one object per node (pools, BGP
// configuration, peers, reflectors): what the shared Read and Delete need of it.
type perNodeModel interface {
	objectID() string
	owner() string
	nodeKeys(ctx context.Context, diags *diag.Diagnostics) []string
	setObserved(ctx context.Context, observed map[string]*pb.Object, down []string, diags *diag.Diagnostics)
	deleteTimeout(ctx context.Context, def time.Duration) (time.Duration, diag.Diagnostics)
}

// readPerNode is the Read of such a resource: every node's object read back; a resource
// whose objects every node lost is removed from state (the plan creates it again); a node
// that does not answer keeps its last known state.
func readPerNode[T any, P interface {
	*T
	perNodeModel
}](ctx context.Context, data *providerData, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m T
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !configuredData(data, &resp.Diagnostics) {
		return
	}
	p := P(&m)
	keys := p.nodeKeys(ctx, &resp.Diagnostics)
	observed, missing, down := readNodeObjects(ctx, data.Fleet, p.objectID(), p.owner(), keys, &resp.Diagnostics)
	if len(keys) > 0 && len(missing) == len(keys) {
		resp.State.RemoveResource(ctx)
		return
	}
	p.setObserved(ctx, observed, down, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// deletePerNode is the Delete of such a resource: its object removed from every node.
func deletePerNode[T any, P interface {
	*T
	perNodeModel
}](ctx context.Context, data *providerData, what string, def time.Duration, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m T
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !configuredData(data, &resp.Diagnostics) {
		return
	}
	p := P(&m)
	ctx, cancel := opTimeout(ctx, p.deleteTimeout, def, &resp.Diagnostics)
	defer cancel()
	deleteNodeObjects(ctx, data.Fleet, what, p.objectID(), p.owner(), p.nodeKeys(ctx, &resp.Diagnostics), &resp.Diagnostics)
}

// The models' parts of perNodeModel that their own files do not have.

func (m *ipPoolModel) deleteTimeout(ctx context.Context, def time.Duration) (time.Duration, diag.Diagnostics) {
	return m.Timeouts.Delete(ctx, def)
}
func (m *bgpConfigModel) deleteTimeout(ctx context.Context, def time.Duration) (time.Duration, diag.Diagnostics) {
	return m.Timeouts.Delete(ctx, def)
}
func (m *peerModel) deleteTimeout(ctx context.Context, def time.Duration) (time.Duration, diag.Diagnostics) {
	return m.Timeouts.Delete(ctx, def)
}
func (m *reflectorModel) deleteTimeout(ctx context.Context, def time.Duration) (time.Duration, diag.Diagnostics) {
	return m.Timeouts.Delete(ctx, def)
}
