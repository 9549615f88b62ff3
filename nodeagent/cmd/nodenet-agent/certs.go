package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodenet/terraform-provider-nodenet/internal/atomicfile"

	"github.com/nodenet/terraform-provider-nodenet/internal/pki"
)

func runCerts(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("certs", stderr)
	out := fs.String("out", "", "directory to write the certificates to (required)")
	cluster := fs.String("cluster", "", "cluster name (required)")
	var nodes, ips listFlag
	fs.Var(&nodes, "nodes", "node names, comma-separated (required)")
	fs.Var(&ips, "ip", "IP SANs of the server certificates, comma-separated (default 127.0.0.1)")
	clientID := fs.String("client-identity", "nodenet://terraform", "URI SAN of the client certificate")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" || *cluster == "" || len(nodes) == 0 {
		return errors.New("certs: --out, --cluster and --nodes are required")
	}
	if len(ips) == 0 {
		ips = listFlag{"127.0.0.1"}
	}
	var netIPs []net.IP
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return fmt.Errorf("certs: --ip %q is not an IP address", s)
		}
		netIPs = append(netIPs, ip)
	}
	return writeCerts(*out, *cluster, nodes, netIPs, *clientID, stdout)
}

func writeCerts(dir, cluster string, nodes []string, ips []net.IP, clientID string, stdout io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	caFile, caKeyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	var ca *pki.CA
	certPEM, cerr := os.ReadFile(caFile)
	keyPEM, kerr := os.ReadFile(caKeyFile)
	switch {
	case cerr == nil && kerr == nil:
		var err error
		if ca, err = pki.LoadCA(certPEM, keyPEM); err != nil {
			return fmt.Errorf("certs: existing CA in %s: %w", dir, err)
		}
		fmt.Fprintf(stdout, "reusing CA %s\n", caFile)
	case errors.Is(cerr, os.ErrNotExist) && errors.Is(kerr, os.ErrNotExist):
		var err error
		if ca, err = pki.NewCA("nodenet CA", time.Time{}); err != nil {
			return fmt.Errorf("certs: %w", err)
		}
		key, err := ca.KeyPEM()
		if err != nil {
			return err
		}
		if err := atomicfile.Write(caKeyFile, key, 0o600); err != nil {
			return fmt.Errorf("certs: %w", err)
		}
		if err := atomicfile.Write(caFile, ca.CertPEM, 0o644); err != nil {
			return fmt.Errorf("certs: %w", err)
		}
		fmt.Fprintf(stdout, "wrote CA %s\n", caFile)
	default:
		return fmt.Errorf("certs: %s holds only one of ca.pem and ca-key.pem (%v, %v); refusing to make a new CA", dir, cerr, kerr)
	}
	write := func(c, k string, cert, key []byte) error {
		if err := atomicfile.Write(k, key, 0o600); err != nil {
			return fmt.Errorf("certs: %w", err)
		}
		if err := atomicfile.Write(c, cert, 0o644); err != nil {
			return fmt.Errorf("certs: %w", err)
		}
		fmt.Fprintf(stdout, "wrote %s, %s\n", c, k)
		return nil
	}
	for _, n := range nodes {
		if strings.ContainsAny(n, "/ ") {
			return fmt.Errorf("certs: node name %q may not contain '/' or spaces", n)
		}
		c, k, err := ca.IssueServer(cluster, n, ips, nil, pki.Options{})
		if err != nil {
			return fmt.Errorf("certs: %s: %w", n, err)
		}
		cf, kf := pki.NodeCertFiles(dir, cluster, n)
		if err := write(cf, kf, c, k); err != nil {
			return err
		}
	}
	c, k, err := ca.IssueClient(clientID, pki.Options{})
	if err != nil {
		return fmt.Errorf("certs: client: %w", err)
	}
	return write(filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem"), c, k)
}
