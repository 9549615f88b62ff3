package lab

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodenet/terraform-provider-nodenet/internal/pki"
)

// TestInProcessAgentLogsRefusals: a client without a certificate is refused and the host's
// agent log says so, with the client's address.
func TestInProcessAgentLogsRefusals(t *testing.T) {
	needRoot(t)
	ns := testPrefix(t) + "h1"
	if err := createNamedNS(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamedNS(ns) })
	dir := t.TempDir()
	ca, err := pki.NewCA("lab test CA", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.IssueServer("c1", "n1", []net.IP{net.IPv4(127, 0, 0, 1)}, nil, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := AgentConfig{Cluster: "c1", Node: "n1", NetnsPath: nsPath(ns), StateDir: filepath.Join(dir, "state"),
		BootIDFile: filepath.Join(dir, "boot_id"), LogFile: filepath.Join(dir, "agent.log"), CNIConfDir: filepath.Join(dir, "net.d")}
	cfg.CertFile, cfg.KeyFile = pki.NodeCertFiles(dir, "c1", "n1")
	cfg.CAFile = filepath.Join(dir, "ca.pem")
	cfg.ClientCAFile = cfg.CAFile
	for p, b := range map[string][]byte{cfg.CertFile: cert, cfg.KeyFile: key, cfg.CAFile: ca.CertPEM, cfg.BootIDFile: []byte("boot-1\n")} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if cfg.Listener, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	stop, err := InProcessAgent("test")(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})

	c, err := tls.Dial("tcp", cfg.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	peer := c.LocalAddr().String()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Read(make([]byte, 1)) // the server's verdict
	c.Close()
	stopped = true
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	log, _ := os.ReadFile(cfg.LogFile)
	if !strings.Contains(string(log), " cni_conf_dir="+cfg.CNIConfDir+" ") {
		t.Errorf("the agent does not log the CNI configuration directory it was given:\n%s", log)
	}
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, `msg="refused TLS handshake"`) && strings.Contains(line, " peer="+peer+" ") &&
			strings.Contains(line, `reason="tls: client didn't provide a certificate"`) {
			return
		}
	}
	t.Fatalf("agent log lacks the refusal of %s:\n%s", peer, log)
}
