package cnifile

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
)

const file = "10-nodenet.conflist"

func run(t *testing.T, steps []dataplane.Step) {
	t.Helper()
	if err := dataplane.Run("test", steps, nil); err != nil {
		t.Fatal(err)
	}
}

func undo(t *testing.T, steps []dataplane.Step) {
	t.Helper()
	for i := len(steps) - 1; i >= 0; i-- {
		if err := steps[i].Undo(); err != nil {
			t.Fatal(err)
		}
	}
}

func content(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "<none>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// names lists dir, so that a temporary file left behind shows.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func change(s []dataplane.Step) string {
	var out []string
	for _, c := range dataplane.Changes(s) {
		out = append(out, c.GetAction().String()+" "+c.GetEntry()+" "+c.GetKey()+" "+c.GetDetail())
	}
	return strings.Join(out, "; ")
}

func TestWriteUpdateDelete(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "cni", "net.d") // missing: the first write makes it
	path := filepath.Join(dir, file)
	if got := FileKey(path); got != "file "+path {
		t.Errorf("FileKey %q", got)
	}
	if got, err := Observe(dir, file); err != nil || got != "" {
		t.Fatalf("Observe of a missing file: %q %v", got, err)
	}

	add, err := Steps(dir, file, "one\n", false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := change(add), "ADD file "+path+" 4 bytes"; got != want {
		t.Errorf("changes %q, want %q", got, want)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("planning touched the disk: %v", err)
	}
	run(t, add)
	if got, _ := Observe(dir, file); got != "one\n" {
		t.Fatalf("after the write: %q", got)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode())
	}
	if n := names(t, dir); !slices.Equal(n, []string{file}) {
		t.Errorf("directory holds %v", n)
	}
	// The undo of the first write removes the file and the directories it made.
	undo(t, add)
	if _, err := os.Stat(filepath.Join(filepath.Dir(path), "..", "..")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("undo left the directories it made: %v", err)
	}
	run(t, add)

	if same, err := Steps(dir, file, "one\n", true); err != nil || len(same) != 0 {
		t.Errorf("same content: %d steps, %v", len(same), err)
	}

	if err := os.Chmod(path, 0o640); err != nil { // the operator's mode comes back on undo
		t.Fatal(err)
	}
	upd, err := Steps(dir, file, "two, longer\n", true)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := change(upd), "UPDATE file "+path+" 4 -> 12 bytes"; got != want {
		t.Errorf("changes %q, want %q", got, want)
	}
	run(t, upd)
	if got := content(t, path); got != "two, longer\n" {
		t.Fatalf("after the update: %q", got)
	}
	undo(t, upd)
	if st, _ := os.Stat(path); content(t, path) != "one\n" || st.Mode().Perm() != 0o640 {
		t.Errorf("undo of the update: %q, mode %v", content(t, path), st.Mode())
	}

	del, err := DeleteSteps(dir, file)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := change(del), "DELETE file "+path+" "; got != want {
		t.Errorf("changes %q, want %q", got, want)
	}
	run(t, del)
	if got := content(t, path); got != "<none>" {
		t.Fatalf("after the delete: %q", got)
	}
	if again, err := DeleteSteps(dir, file); err != nil || len(again) != 0 {
		t.Errorf("delete of a missing file: %d steps, %v", len(again), err)
	}
	undo(t, del)
	if got := content(t, path); got != "one\n" {
		t.Errorf("undo of the delete: %q", got)
	}
	if n := names(t, dir); !slices.Equal(n, []string{file}) {
		t.Errorf("directory holds %v", n)
	}
}

// TestForeignFile: a file of that name that nodenet did not write is a conflict naming it,
// and stays as it is.
func TestForeignFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, []byte(`{"name":"k8s-pod-network"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Steps(dir, file, "ours\n", false)
	var ce *reconcile.ConflictError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "did not write") {
		t.Fatalf("foreign file: %v", err)
	}
	if got := content(t, path); got != `{"name":"k8s-pod-network"}` {
		t.Errorf("foreign file changed: %q", got)
	}
	// Not even one with the same content: nodenet would remove it on delete.
	if _, err := Steps(dir, file, `{"name":"k8s-pod-network"}`, false); !errors.As(err, &ce) {
		t.Errorf("foreign file with our content: %v", err)
	}
	if got, err := Observe(dir, file); err != nil || got != `{"name":"k8s-pod-network"}` {
		t.Errorf("Observe: %q %v", got, err)
	}

	// One made by hand between the plan and the write.
	other := "20-nodenet.conflist"
	add, err := Steps(dir, other, "ours\n", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, other), []byte("by hand"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := dataplane.Run("test", add, nil); !errors.As(err, &ce) || !strings.Contains(err.Error(), "appeared meanwhile") {
		t.Errorf("write over a file made since the plan: %v", err)
	}
	if got := content(t, filepath.Join(dir, other)); got != "by hand" {
		t.Errorf("file made since the plan: %q", got)
	}
}

// TestNotAFile: where the file should be there is a directory or a link; nothing replaces it.
func TestNotAFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, file)
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	var ce *reconcile.ConflictError
	for _, owned := range []bool{false, true} {
		if _, err := Steps(dir, file, "x", owned); !errors.As(err, &ce) || !strings.Contains(err.Error(), "a directory") {
			t.Errorf("owned %v: %v", owned, err)
		}
	}
	if _, err := DeleteSteps(dir, file); !errors.As(err, &ce) {
		t.Errorf("delete: %v", err)
	}
	if _, err := Observe(dir, file); err == nil || !strings.Contains(err.Error(), "a directory") {
		t.Errorf("Observe: %v", err)
	}
	link := "30-nodenet.conflist"
	if err := os.Symlink("/etc/hostname", filepath.Join(dir, link)); err != nil {
		t.Fatal(err)
	}
	if _, err := Steps(dir, link, "x", true); !errors.As(err, &ce) || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("owned link: %v", err)
	}
}

// TestRollback: a step after the write fails; dataplane.Run undoes the write.
func TestRollback(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	steps, err := Steps(dir, file, "new", true)
	if err != nil {
		t.Fatal(err)
	}
	steps = append(steps, dataplane.Step{Desc: "route", Do: func() error { return errors.New("refused") }})
	if err := dataplane.Run("ip_pool", steps, nil); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Run: %v", err)
	}
	if got := content(t, path); got != "old" {
		t.Errorf("after the rollback: %q", got)
	}
}

func TestRefusedNames(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ dir, file, want string }{
		{"", file, "--cni-conf-dir"},
		{"etc/cni/net.d", file, "not an absolute path"},
		{dir, "../10-x.conflist", "not a CNI configuration file name"},
		{dir, "10-x.json", "not a CNI configuration file name"},
		{dir, ".10-x.conflist", "not a CNI configuration file name"},
		{dir, "", "not a CNI configuration file name"},
	} {
		if _, err := Steps(tc.dir, tc.file, "x", true); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Steps(%q, %q): %v, want %q", tc.dir, tc.file, err, tc.want)
		}
		if _, err := Observe(tc.dir, tc.file); err == nil {
			t.Errorf("Observe(%q, %q) took it", tc.dir, tc.file)
		}
		if _, err := DeleteSteps(tc.dir, tc.file); err == nil {
			t.Errorf("DeleteSteps(%q, %q) took it", tc.dir, tc.file)
		}
	}
	if _, err := Steps(dir, file, "", true); err == nil {
		t.Error("empty content taken: DeleteSteps removes a file")
	}
	if n := names(t, dir); len(n) != 0 {
		t.Errorf("refusals wrote %v", n)
	}
}
