package provider

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6/tf6server"
)

// tfCLI runs the real terraform binary in a directory against this provider served
// in-process (reattached, as terraform-plugin-testing does), and returns what the command
// prints: what a user reads, warnings included, which the plan checks of
// terraform-plugin-testing cannot see.
type tfCLI struct {
	t        *testing.T
	dir      string
	reattach string
}

func newCLI(t *testing.T, config string) *tfCLI {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cfgCh := make(chan *plugin.ReattachConfig, 1)
	closeCh := make(chan struct{})
	go func() {
		err := tf6server.Serve("registry.terraform.io/nodenet/nodenet", providerserver.NewProtocol6(New("test")()),
			tf6server.WithDebug(ctx, cfgCh, closeCh), tf6server.WithLoggingSink(t),
			tf6server.WithGoPluginLogger(hclog.NewNullLogger()))
		if err != nil {
			t.Errorf("serve the provider: %v", err)
		}
	}()
	cfg := <-cfgCh
	t.Cleanup(func() { cancel(); <-closeCh })
	b, err := json.Marshal(map[string]any{"registry.terraform.io/nodenet/nodenet": map[string]any{
		"Protocol": string(cfg.Protocol), "ProtocolVersion": cfg.ProtocolVersion, "Pid": cfg.Pid, "Test": true,
		"Addr": map[string]string{"Network": cfg.Addr.Network(), "String": cfg.Addr.String()},
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := &tfCLI{t: t, dir: dir, reattach: string(b)}
	c.must("init", "-input=false", "-no-color")
	return c
}

// run runs terraform with args and returns its combined output and error.
func (c *tfCLI) run(args ...string) (string, error) {
	cmd := exec.Command(os.Getenv("TF_ACC_TERRAFORM_PATH"), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "TF_REATTACH_PROVIDERS="+c.reattach, "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1",
		"TF_CLI_CONFIG_FILE="+filepath.Join(c.dir, "no.terraformrc"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// must runs terraform and fails the test when it fails.
func (c *tfCLI) must(args ...string) string {
	c.t.Helper()
	out, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("terraform %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}
