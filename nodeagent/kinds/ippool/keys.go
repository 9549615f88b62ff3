package ippool

import (
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// The kernel entries (keys) an object owns tell what it had: its devices, its files.

// ownedDevices are the devices among the keys.
func ownedDevices(owned []string) []string {
	var out []string
	for _, k := range owned {
		if entry, rest := dataplane.SplitKey(k); entry == "link" {
			out = append(out, rest)
		}
	}
	return out
}

// ownedFiles are the files among the keys.
func ownedFiles(owned []string) []string {
	var out []string
	for _, k := range owned {
		if entry, rest := dataplane.SplitKey(k); entry == "file" {
			out = append(out, rest)
		}
	}
	return out
}

// directKeys are the keys of the encapsulation's direct routes.
func directKeys(e *pb.PoolEncapsulation) []string {
	var keys []string
	for _, rt := range e.GetDirect() {
		keys = append(keys, dataplane.RouteKey(dataplane.CanonPrefix(rt.GetDst()), 0))
	}
	return keys
}

// without is keys less drop.
func without(keys, drop []string) []string {
	var out []string
	for _, k := range keys {
		if !contains(drop, k) {
			out = append(out, k)
		}
	}
	return out
}
