package dataplane

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Kernel entries are named by keys: "link <name>" and "route <dst>" (main table) or
// "route <dst> table <n>". An object's claims and the entries it owns are such keys; the
// server keeps them exclusive across objects, and errors name entries by them.

// LinkKey names a link.
func LinkKey(name string) string { return "link " + name }

// RouteKey names the route to dst in a routing table.
func RouteKey(dst string, table int) string {
	if table == 0 || table == unix.RT_TABLE_MAIN {
		return "route " + dst
	}
	return fmt.Sprintf("route %s table %d", dst, table)
}

// SplitKey returns a key's entry type ("link", "route") and the rest.
func SplitKey(key string) (entry, rest string) {
	entry, rest, _ = strings.Cut(key, " ")
	return entry, rest
}

// Marked lists the kernel entries that carry nodenet's marks: links whose ifalias starts with
// "nodenet:" and main-table routes with nodenet's route protocol. An entry names the object
// id in its link's ifalias. The server reports those that no managed object explains.
func (d *Dataplane) Marked() ([]*pb.KernelEntry, error) {
	h, err := d.Handle()
	if err != nil {
		return nil, err
	}
	defer h.Release()
	links, err := Retry(h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []*pb.KernelEntry
	objectOf := map[int]string{} // ifindex -> the object id its ifalias names
	names := map[int]string{}
	for _, l := range links {
		a := l.Attrs()
		names[a.Index] = a.Name
		if id, ok := strings.CutPrefix(a.Alias, pb.OwnerPrefix); ok {
			objectOf[a.Index] = id
			out = append(out, &pb.KernelEntry{Entry: "link", Key: a.Name, Detail: "ifalias " + a.Alias, ObjectId: id})
		}
	}
	routes, err := h.MainRoutes()
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if r.Protocol != RouteProtocol {
			continue
		}
		detail := ""
		if r.Gw != nil {
			detail = "via " + r.Gw.String() + " "
		}
		if r.Type == unix.RTN_BLACKHOLE {
			detail = "blackhole "
		}
		if r.LinkIndex != 0 {
			detail += "dev " + names[r.LinkIndex] + " "
		}
		detail += "proto " + RouteProtocol.String()
		_, key := SplitKey(RouteKey(RouteDst(r), r.Table))
		out = append(out, &pb.KernelEntry{Entry: "route", Key: key, Detail: detail, ObjectId: objectOf[r.LinkIndex]})
	}
	return out, nil
}

// RemoveMarkedRoute removes the main-table routes to dst that carry nodenet's route protocol
// (and no other route to dst). A route already gone is fine.
func (d *Dataplane) RemoveMarkedRoute(dst string) error {
	h, err := d.Handle()
	if err != nil {
		return err
	}
	defer h.Release()
	routes, err := h.MainRoutes()
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if r.Protocol != RouteProtocol || RouteDst(r) != dst {
			continue
		}
		if err := h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("remove %s: %w", h.DescribeRoute(r), err)
		}
	}
	return nil
}
