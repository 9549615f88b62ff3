package provider

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
)

// ImportState adopts an existing NetworkAttachmentDefinition: ID `<namespace>/<name>` when
// one cluster of the provider has Kubernetes access, else `<cluster>/<namespace>/<name>`.
// Read then fills the typed attributes when they can express the configuration, else config.
func (r *NetworkAttachmentResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	cluster, ns, name, err := r.parseImportID(req.ID)
	if err != nil {
		resp.Diagnostics.AddError("Invalid import ID", err.Error())
		return
	}
	for attr, v := range map[string]string{"cluster": cluster, "namespace": ns, "name": name, "id": ns + "/" + name} {
		resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root(attr), v)...)
	}
}

func (r *NetworkAttachmentResource) parseImportID(id string) (cluster, ns, name string, err error) {
	parts := strings.Split(id, "/")
	for _, p := range parts {
		if p == "" {
			parts = nil
		}
	}
	var withKube []string
	if r.data != nil {
		withKube = keysOf(r.data.Kube)
	}
	switch len(parts) {
	case 3:
		return parts[0], parts[1], parts[2], nil
	case 2:
		if len(withKube) == 1 {
			return withKube[0], parts[0], parts[1], nil
		}
		return "", "", "", fmt.Errorf("%q names no cluster and the provider has %d clusters with Kubernetes access (%s): expecting <cluster>/<namespace>/<name>",
			id, len(withKube), strings.Join(withKube, ", "))
	}
	return "", "", "", fmt.Errorf("%q: expecting <namespace>/<name>, or <cluster>/<namespace>/<name> when several clusters have Kubernetes access", id)
}
