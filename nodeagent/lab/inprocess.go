package lab

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"google.golang.org/grpc/credentials"

	"github.com/nodenet/terraform-provider-nodenet/internal/tlsconf"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/server"
)

// InProcessAgent runs each host's agent inside this process (server.Run, the code
// `nodenet-agent serve` runs), logging to the host's LogFile. Tests use it: no binary to
// build, nothing left running when the test process ends.
func InProcessAgent(version string) StartAgent { return InProcessAgentHooked(version, nil) }

// InProcessAgentHooked is InProcessAgent with a hook that runs in every agent's applies when
// the intent is recorded and before the kernel is touched (server.Config.AfterIntent), with
// the node's name: tests make one node's apply slow with it.
func InProcessAgentHooked(version string, afterIntent func(node, id string)) StartAgent {
	return func(cfg AgentConfig) (func() error, error) {
		read := func(p string) ([]byte, error) { return tlsconf.ReadPEM(p) }
		cert, err := read(cfg.CertFile)
		if err != nil {
			return nil, err
		}
		key, err := read(cfg.KeyFile)
		if err != nil {
			return nil, err
		}
		ca, err := read(cfg.ClientCAFile)
		if err != nil {
			return nil, err
		}
		tc, err := tlsconf.Server(cert, key, ca, nil)
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(cfg.BootIDFile)
		if err != nil {
			return nil, fmt.Errorf("boot id: %w", err)
		}
		logf, err := os.OpenFile(cfg.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		log := slog.New(slog.NewTextHandler(logf, nil)).With("node", cfg.Cluster+"/"+cfg.Node)
		var hook func(id string)
		if afterIntent != nil {
			hook = func(id string) { afterIntent(cfg.Node, id) }
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- server.Run(ctx, server.AgentConfig{
				Cluster: cfg.Cluster, Node: cfg.Node, Version: version, NetnsPath: cfg.NetnsPath,
				Creds: tlsconf.LogRefusals(credentials.NewTLS(tc), log), StateDir: cfg.StateDir, BootID: strings.TrimSpace(string(b)),
				Logger: log, AfterIntent: hook, CNIConfDir: cfg.CNIConfDir, CNIIpamDataDir: cfg.CNIDataDir,
			}, cfg.Listener)
		}()
		return func() error {
			cancel()
			err := <-done
			logf.Close()
			return err
		}, nil
	}
}
