package store

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

func obj(name string, vni uint32) *pb.Object {
	return &pb.Object{Id: pb.ObjectID(pb.KindVxlanTunnel, name), Owner: "test:1", Spec: &pb.Object_VxlanTunnel{VxlanTunnel: &pb.VxlanTunnel{
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
	pending := &Pending{Op: "apply", Claims: []string{"route 10.9.0.0/24"}, Started: at.Add(time.Second)}
	b := &Record{Object: obj("vx-b", 7), Owned: []string{"link vx-b"}, BootID: "boot-1", AppliedAt: at,
		Marks: map[string]string{"link vx-b": "hand made"}}
	for _, r := range []*Record{b, {Object: obj("vx-a", 8), AppliedAt: at}} {
		if err := s.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutIntent("vxlan_tunnel/vx-b", "test:1", pending); err != nil {
		t.Fatal(err)
	}
	// b is under way: its intent is written beside (not over) a record.
	if _, err := os.Stat(filepath.Join(dir, "objects", "vxlan_tunnel%2Fvx-b.intent")); err != nil {
		t.Fatal(err)
	}
	if f, err := os.ReadFile(filepath.Join(dir, "format")); err != nil || string(f) != "2\n" {
		t.Fatalf("format file: %q %v", f, err)
	}
	// A fresh Store over the same directory sees the same records.
	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s2.Get("vxlan_tunnel/vx-b")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.Object, b.Object) || !reflect.DeepEqual(got.Owned, b.Owned) || got.BootID != "boot-1" ||
		!got.AppliedAt.Equal(at) || !reflect.DeepEqual(got.Marks, b.Marks) || got.Pending == nil || got.Pending.Op != "apply" {
		t.Fatalf("round trip differs: %+v", got)
	}
	if want := []string{"link vx-b", "route 10.9.0.0/24"}; !reflect.DeepEqual(got.Entries(), want) {
		t.Errorf("entries %q, want %q", got.Entries(), want)
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
	if _, err := s2.Get("bogus"); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("bad id: %v", err)
	}
}

// TestNamesWithPathCharacters: ids whose names are CIDRs or contain '..', '%' or '/' each get
// a file of their own inside objects/.
func TestNamesWithPathCharacters(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	ids := []string{"ippool/10.244.0.0/16", "ippool/10.244.0.0%2F16", "ippool/../../etc", "ippool/10.244.0.0_16", "x/.hidden"}
	for _, id := range ids {
		if err := s.Put(&Record{Object: &pb.Object{Id: id}}); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "objects"))
	if len(ents) != len(ids) {
		t.Fatalf("%d files for %d ids", len(ents), len(ids))
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") || strings.Contains(e.Name(), "/") {
			t.Errorf("file name %q", e.Name())
		}
	}
	for _, id := range ids {
		rec, err := s.Get(id)
		if err != nil || rec.ID() != id {
			t.Errorf("%s: %v %v", id, rec, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "..", "etc")); err == nil {
		t.Error("a record escaped the state dir")
	}
}

func TestNewerFormatRefused(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "format"), []byte("3\n"), 0o600)
	_, err := Open(dir)
	if err == nil || !strings.Contains(err.Error(), "is of format 3, written by a newer nodenet-agent; this agent reads formats 1 to 2") {
		t.Fatalf("want a refusal naming the formats, got %v", err)
	}

	// A single record of a newer format is refused too, naming the file.
	dir = t.TempDir()
	s, _ := Open(dir)
	s.Put(&Record{Object: obj("vx", 1)})
	p := filepath.Join(dir, "objects", "vxlan_tunnel%2Fvx.json")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, []byte(strings.Replace(string(b), `"version": 2`, `"version": 7`, 1)), 0o600)
	if _, err := s.List(); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "newer nodenet-agent") {
		t.Fatalf("want a refusal naming %s, got %v", p, err)
	}
}

// TestMigrateFormat1: a directory written by the first agents (one boot_id file, records
// without owned keys) is read and rewritten in this format.
func TestMigrateFormat1(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "objects"), 0o700)
	os.WriteFile(filepath.Join(dir, "boot_id"), []byte("boot-old\n"), 0o600)
	v1 := `{"version": 1, "id": "vxlan_tunnel/vxlan-test",
  "object": {"id": "vxlan_tunnel/vxlan-test", "vxlanTunnel": {"device": {"name": "vxlan-test", "vni": 10001, "underlay": "eth0"}}},
  "owned": {"id": "vxlan_tunnel/vxlan-test", "vxlanTunnel": {"device": {"name": "vxlan-test", "ifindex": 9}}},
  "applied_at": "2026-01-02T03:04:05Z"}`
	os.WriteFile(filepath.Join(dir, "objects", "vxlan_tunnel__vxlan-test.json"), []byte(v1), 0o600)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	r := list[0]
	if r.ID() != "vxlan_tunnel/vxlan-test" || r.BootID != "boot-old" || r.Owned != nil || r.Object.GetVxlanTunnel().GetDevice().GetVni() != 10001 {
		t.Fatalf("migrated record: %+v", r)
	}
	for _, gone := range []string{"boot_id", "objects/vxlan_tunnel__vxlan-test.json"} {
		if _, err := os.Stat(filepath.Join(dir, gone)); err == nil {
			t.Errorf("%s still there after the migration", gone)
		}
	}
}

// TestTempFilesCleaned: temporary files of writes a crash interrupted are removed at open,
// and List never reads them.
func TestTempFilesCleaned(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	for i := range 20 {
		if err := s.Put(&Record{Object: obj("vx", uint32(i+1))}); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "objects", "vxlan_tunnel%2Fvx.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stat: %v %v", fi, err)
	}
	left := filepath.Join(dir, "objects", ".vxlan_tunnel%2Fvy.json.tmp-12345")
	os.WriteFile(left, []byte("{"), 0o600)
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].Object.GetVxlanTunnel().GetDevice().GetVni() != 20 {
		t.Fatalf("list: %v %v", list, err)
	}
	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := s2.Cleaned(); len(got) != 1 || got[0] != left {
		t.Fatalf("cleaned %q, want %q", got, left)
	}
	if _, err := os.Stat(left); err == nil {
		t.Fatal("temporary file still there")
	}
}

func TestCorrupt(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	if err := s.Put(&Record{Object: obj("vx", 1)}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "objects", "vxlan_tunnel%2Fvx.json")
	os.WriteFile(p, []byte(`{"id": "vxlan_tunnel/vx", "object": {"vxlanTunnel": 5`), 0o600)
	s, _ = Open(dir) // the next start reads what is on disk
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

func TestFailWrite(t *testing.T) {
	s, _ := Open(t.TempDir())
	s.FailWrite = func(*Record) error { return errors.New("disk full") }
	if err := s.Put(&Record{Object: obj("vx", 1)}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("want the injected failure, got %v", err)
	}
}

// TestCacheIsACopy: records from the store are copies: changing one changes neither the
// store's memory nor what the next Get returns.
func TestCacheIsACopy(t *testing.T) {
	s, _ := Open(t.TempDir())
	if err := s.Put(&Record{Object: obj("vx", 1), Owned: []string{"link vx"}, Marks: map[string]string{"link vx": ""}}); err != nil {
		t.Fatal(err)
	}
	r, _ := s.Get("vxlan_tunnel/vx")
	r.Object.Owner = "changed"
	r.Owned[0] = "changed"
	r.Marks["link vx"] = "changed"
	again, _ := s.Get("vxlan_tunnel/vx")
	if again.Object.GetOwner() != "test:1" || again.Owned[0] != "link vx" || again.Marks["link vx"] != "" {
		t.Fatalf("the cache shares memory with a caller: %+v", again)
	}
}

// TestIntentBesideTheRecord: an intent is written beside the record and read instead of it
// until the outcome replaces the record and removes it.
func TestIntentBesideTheRecord(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	t0 := time.Now()
	s.Put(&Record{Object: obj("vx", 1), AppliedAt: t0})
	s.PutIntent("vxlan_tunnel/vx", "test:1", &Pending{Op: "apply", Claims: []string{"route 10.1.0.0/24"}, Started: t0.Add(time.Second)})
	for _, st := range []*Store{s, reopen(t, dir)} {
		// The record as it was, with the intent beside it.
		r, err := st.Get("vxlan_tunnel/vx")
		if err != nil || r.Pending == nil || r.Object.GetVxlanTunnel().GetDevice().GetVni() != 1 || r.Pending.Claims[0] != "route 10.1.0.0/24" {
			t.Fatalf("under way: %+v %v", r, err)
		}
		if l, _ := st.List(); len(l) != 1 || l[0].Pending == nil {
			t.Fatalf("list under way: %v", l)
		}
	}
	s.Put(&Record{Object: obj("vx", 2), AppliedAt: t0.Add(2 * time.Second)})
	if _, err := os.Stat(filepath.Join(dir, "objects", "vxlan_tunnel%2Fvx.intent")); err == nil {
		t.Fatal("the outcome left the intent")
	}
	if r, _ := reopen(t, dir).Get("vxlan_tunnel/vx"); r.Pending != nil || r.Object.GetVxlanTunnel().GetDevice().GetVni() != 2 {
		t.Fatalf("after the outcome: %+v", r)
	}
	if err := s.Delete("vxlan_tunnel/vx"); err != nil {
		t.Fatal(err)
	}
	// A create under way: only the intent, with the id and owner.
	s.PutIntent("vxlan_tunnel/vy", "test:2", &Pending{Op: "apply", Claims: []string{"link vy"}, Started: t0})
	r, err := reopen(t, dir).Get("vxlan_tunnel/vy")
	if err != nil || r.Object.GetOwner() != "test:2" || r.Object.GetSpec() != nil || r.Pending == nil {
		t.Fatalf("a create under way: %+v %v", r, err)
	}
	if err := s.DropIntent("vxlan_tunnel/vy"); err != nil {
		t.Fatal(err)
	}
	if _, err := reopen(t, dir).Get("vxlan_tunnel/vy"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a dropped intent is still read: %v", err)
	}
}

// TestIntentsAfterAPowerLoss: an intent torn by a power loss, or older than its record's
// outcome (whose removal of it did not reach the disk), is removed at open; the record stays.
func TestIntentsAfterAPowerLoss(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	t0 := time.Now()
	s.Put(&Record{Object: obj("vxa", 1), AppliedAt: t0})
	s.Put(&Record{Object: obj("vxb", 1), AppliedAt: t0.Add(time.Minute)})
	torn := filepath.Join(dir, "objects", "vxlan_tunnel%2Fvxa.intent")
	os.WriteFile(torn, []byte(`{"version": 2, "id": "vxlan_tun`), 0o600)
	stale := filepath.Join(dir, "objects", "vxlan_tunnel%2Fvxb.intent")
	b, _ := json.Marshal(fileRecord{Version: 2, ID: "vxlan_tunnel/vxb", Object: json.RawMessage(`{"id":"vxlan_tunnel/vxb"}`), Pending: &Pending{Op: "apply", Started: t0}})
	os.WriteFile(stale, b, 0o600)
	s2 := reopen(t, dir)
	if got := strings.Join(s2.Cleaned(), ","); got != torn+","+stale {
		t.Fatalf("cleaned %q, want the torn and the stale intent", got)
	}
	for _, n := range []string{"vxa", "vxb"} {
		if r, err := s2.Get("vxlan_tunnel/" + n); err != nil || r.Pending != nil || r.Object.GetVxlanTunnel() == nil {
			t.Fatalf("%s after the power loss: %+v %v", n, r, err)
		}
	}
}

func reopen(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
