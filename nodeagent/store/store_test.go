package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

func obj(name string, vni uint32) *pb.Object {
	return &pb.Object{Id: pb.ObjectID(pb.KindVxlanTunnel, name), Spec: &pb.Object_VxlanTunnel{VxlanTunnel: &pb.VxlanTunnel{
		Device: &pb.VxlanDevice{Name: name, Vni: vni, Underlay: "eth0", Address: "10.1.0.1/24"},
		Fdb:    []*pb.FdbEntry{{Mac: "02:00:00:00:00:01", Dst: "192.168.1.2"}},
	}}}
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	owned := obj("vx-b", 7)
	owned.GetVxlanTunnel().Device.Ifindex = 12
	for _, r := range []*Record{{Object: obj("vx-b", 7), Owned: owned, AppliedAt: at}, {Object: obj("vx-a", 8), AppliedAt: at}} {
		if err := s.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "objects", "vxlan_tunnel__vx-b.json")); err != nil {
		t.Fatal(err)
	}
	// A fresh Store over the same directory sees the same records.
	s2, _ := Open(dir)
	got, err := s2.Get("vxlan_tunnel/vx-b")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.Object, obj("vx-b", 7)) || !proto.Equal(got.Owned, owned) || !got.AppliedAt.Equal(at) {
		t.Fatalf("round trip differs: %+v", got)
	}
	list, err := s2.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID() != "vxlan_tunnel/vx-a" || list[1].ID() != "vxlan_tunnel/vx-b" || list[0].Owned != nil {
		t.Fatalf("list: %v", list)
	}
	if err := s2.Delete("vxlan_tunnel/vx-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Get("vxlan_tunnel/vx-a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if err := s2.Delete("vxlan_tunnel/vx-a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if _, err := s2.Get("bogus/x"); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("bad id: %v", err)
	}

	if got := s.LastBootID(); got != "" {
		t.Fatalf("boot id %q before any", got)
	}
	if err := s.SetBootID("abc-123"); err != nil {
		t.Fatal(err)
	}
	if got := s2.LastBootID(); got != "abc-123" {
		t.Fatalf("boot id %q", got)
	}
}

func TestAtomicNoLeftovers(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	for i := range 20 {
		if err := s.Put(&Record{Object: obj("vx", uint32(i+1))}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetBootID("b" + string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{dir, filepath.Join(dir, "objects")} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if strings.Contains(e.Name(), ".tmp-") {
				t.Errorf("temporary file left: %s/%s", d, e.Name())
			}
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "objects", "vxlan_tunnel__vx.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stat: %v %v", fi, err)
	}
	// A temp file left by a crash is ignored by List.
	os.WriteFile(filepath.Join(dir, "objects", ".vxlan_tunnel__vy.json.tmp-1"), []byte("{"), 0o600)
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].Object.GetVxlanTunnel().GetDevice().GetVni() != 20 {
		t.Fatalf("list: %v %v", list, err)
	}
}

func TestCorrupt(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	if err := s.Put(&Record{Object: obj("vx", 1)}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "objects", "vxlan_tunnel__vx.json")
	os.WriteFile(p, []byte(`{"id": "vxlan_tunnel/vx", "object": {"vxlanTunnel": 5`), 0o600)
	for _, f := range []func() error{
		func() error { _, err := s.Get("vxlan_tunnel/vx"); return err },
		func() error { _, err := s.List(); return err },
	} {
		err := f()
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "corrupt") {
			t.Fatalf("want corrupt error naming %s, got %v", p, err)
		}
	}
}
