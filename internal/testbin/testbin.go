// Package testbin finds the programs that hack/kube-bins.sh builds once into a cache outside
// the clone, for the tests that run them: kube-apiserver and kubectl, and the reference CNI
// plugins. It has no dependencies, so that the node side's lab can use it without the
// Kubernetes client libraries.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Versions of the cached programs; keep in step with hack/kube-bins.sh.
const (
	KubeVersion = "v1.34.2"
	CNIVersion  = "v1.9.1"
)

// CacheDir is where hack/kube-bins.sh puts the programs: $NODENET_CACHE or /var/cache/nodenet.
func CacheDir() string {
	if d := os.Getenv("NODENET_CACHE"); d != "" {
		return d
	}
	return "/var/cache/nodenet"
}

// CNIDir is the directory of the cached CNI plugins: a CNI_PATH.
func CNIDir() string { return filepath.Join(CacheDir(), "cni-"+CNIVersion) }

// Path is the path of a cached program: "kube-apiserver", "kubectl" (built from
// k8s.io/kubernetes) or a CNI plugin ("macvlan", "static", "ptp", "host-local").
func Path(name string) string {
	switch name {
	case "kube-apiserver", "kubectl":
		return filepath.Join(CacheDir(), "kube-"+KubeVersion, name)
	}
	return filepath.Join(CNIDir(), name)
}

// Require skips the test, saying why, when the programs are missing; "etcd" is looked up in
// PATH. With NODENET_REQUIRE_KUBE=1 (CI) it fails instead, so CI cannot skip silently.
func Require(t testing.TB, programs ...string) {
	t.Helper()
	var missing []string
	for _, p := range programs {
		path := Path(p)
		if p == "etcd" {
			var err error
			if path, err = exec.LookPath("etcd"); err != nil {
				missing = append(missing, "etcd (Debian package etcd-server)")
				continue
			}
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode()&0o111 == 0 {
			missing = append(missing, path)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("needs %v: run hack/deps.sh and hack/kube-bins.sh (it builds what is missing, once: kube-apiserver in about 9 minutes, the CNI plugins in seconds)", missing)
	if os.Getenv("NODENET_REQUIRE_KUBE") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
