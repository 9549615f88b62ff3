package testbin

import "testing"

func TestPath(t *testing.T) {
	t.Setenv("NODENET_CACHE", "/c")
	for name, want := range map[string]string{
		"kube-apiserver": "/c/kube-" + KubeVersion + "/kube-apiserver",
		"kubectl":        "/c/kube-" + KubeVersion + "/kubectl",
		"ptp":            "/c/cni-" + CNIVersion + "/ptp",
		"host-local":     "/c/cni-" + CNIVersion + "/host-local",
	} {
		if got := Path(name); got != want {
			t.Errorf("Path(%q) = %s, want %s", name, got, want)
		}
	}
	if CNIDir() != "/c/cni-"+CNIVersion {
		t.Errorf("CNIDir %s", CNIDir())
	}
	t.Setenv("NODENET_CACHE", "")
	if CacheDir() != "/var/cache/nodenet" {
		t.Errorf("default cache %s", CacheDir())
	}
}
