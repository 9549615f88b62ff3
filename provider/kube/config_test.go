package kube

import "testing"

// Unset attributes come from KUBE_*, the kubeconfig path from KUBE_CONFIG_PATH before
// KUBECONFIG; set attributes are never overridden by the environment.
func TestWithEnv(t *testing.T) {
	t.Setenv("KUBE_CONFIG_PATH", "/from/kube_config_path")
	t.Setenv("KUBECONFIG", "/from/kubeconfig")
	t.Setenv("KUBE_HOST", "https://env:6443")
	t.Setenv("KUBE_TOKEN", "env-token")
	t.Setenv("KUBE_INSECURE", "true")
	t.Setenv("KUBE_CTX", "env-ctx")
	c := Config{Host: "https://set:6443"}.WithEnv()
	if c.ConfigPath != "/from/kube_config_path" || c.Host != "https://set:6443" || c.Token != "env-token" ||
		c.Insecure == nil || !*c.Insecure || c.ConfigContext != "env-ctx" {
		t.Errorf("%+v", c)
	}
	t.Setenv("KUBE_CONFIG_PATH", "")
	if c := (Config{}).WithEnv(); c.ConfigPath != "/from/kubeconfig" {
		t.Errorf("KUBECONFIG fallback: %q", c.ConfigPath)
	}
	f := false
	if c := (Config{Insecure: &f}).WithEnv(); *c.Insecure {
		t.Error("KUBE_INSECURE overrode insecure = false")
	}
}
