// Package tlsconf builds the mutual-TLS configurations nodenet uses between the Terraform
// provider (client) and nodenet-agent (server).
//
// Agents are addressed by IP, so the client does not check host names: it verifies the
// server chain against the nodenet CA itself and requires the leaf's URI SAN to be the node
// identity it expects (nodenet://<cluster>/<node>). The server requires a client
// certificate from the client CA and, optionally, one of a list of client identity URIs.
package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc/credentials"
)

// Server returns a TLS 1.3 server configuration presenting certPEM/keyPEM that requires a
// client certificate signed by clientCAPEM. If allowedClients is non-empty the client
// certificate must carry one of those URI SANs.
func Server(certPEM, keyPEM, clientCAPEM []byte, allowedClients []string) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: server certificate/key: %w", err)
	}
	pool, err := pool(clientCAPEM, "client CA")
	if err != nil {
		return nil, err
	}
	allowed := append([]string(nil), allowedClients...)
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	if len(allowed) > 0 {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tlsconf: client presented no certificate")
			}
			got := URIs(cs.PeerCertificates[0])
			for _, u := range got {
				for _, a := range allowed {
					if u == a {
						return nil
					}
				}
			}
			return &clientIdentityError{got: describe(got), allowed: allowed}
		}
	}
	return cfg, nil
}

// clientIdentityError refuses a client of the right CA whose identity is not allowed.
type clientIdentityError struct {
	got     string
	allowed []string
}

func (e *clientIdentityError) Error() string {
	return fmt.Sprintf("tlsconf: client identity %s is not allowed (allowed: %s)", e.got, strings.Join(e.allowed, ", "))
}

// IdentityError is returned by the client handshake when the agent's certificate is valid
// but names another node.
type IdentityError struct {
	Addr     string // the agent's address; "" when unknown
	Got      string // the URI SANs the agent presented
	Expected string
}

func (e *IdentityError) Error() string {
	at := "agent"
	if e.Addr != "" {
		at = "agent at " + e.Addr
	}
	return fmt.Sprintf("%s presented identity %s, expected %s", at, e.Got, e.Expected)
}

// Client returns a TLS 1.3 client configuration presenting certPEM/keyPEM that verifies the
// server chain against caPEM (for server authentication, without checking host names) and
// requires the server leaf to carry the URI SAN expectURI.
//
// Use it through Credentials to have the agent's address in identity errors.
func Client(caPEM, certPEM, keyPEM []byte, expectURI string) (*tls.Config, error) {
	if expectURI == "" {
		return nil, errors.New("tlsconf: the expected agent identity URI is required")
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: client certificate/key: %w", err)
	}
	roots, err := pool(caPEM, "CA")
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      roots,
		// Agents are addressed by IP: the chain and identity are checked in VerifyConnection.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tlsconf: agent presented no certificate")
			}
			leaf := cs.PeerCertificates[0]
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{
				Roots:         roots,
				Intermediates: inter,
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}); err != nil {
				return fmt.Errorf("tlsconf: agent certificate (%s) not trusted: %w", describe(URIs(leaf)), err)
			}
			got := URIs(leaf)
			for _, u := range got {
				if u == expectURI {
					return nil
				}
			}
			return &IdentityError{Addr: cs.ServerName, Got: describe(got), Expected: expectURI}
		},
	}
	return cfg, nil
}

// Credentials wraps a client configuration from Client as gRPC transport credentials that
// name the agent's address in identity errors.
func Credentials(cfg *tls.Config) credentials.TransportCredentials {
	return &creds{TransportCredentials: credentials.NewTLS(cfg)}
}

type creds struct {
	credentials.TransportCredentials
}

func (c *creds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	var ie *IdentityError
	if err != nil && errors.As(err, &ie) {
		addr := authority
		if addr == "" && raw != nil && raw.RemoteAddr() != nil {
			addr = raw.RemoteAddr().String()
		}
		ie.Addr = addr
	}
	return conn, info, err
}

func (c *creds) Clone() credentials.TransportCredentials {
	return &creds{TransportCredentials: c.TransportCredentials.Clone()}
}

// URIs returns the URI SANs of a certificate as strings.
func URIs(c *x509.Certificate) []string {
	out := make([]string, 0, len(c.URIs))
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	return out
}

func describe(uris []string) string {
	if len(uris) == 0 {
		return "(no URI SAN)"
	}
	return strings.Join(uris, ",")
}

func pool(caPEM []byte, what string) (*x509.CertPool, error) {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("tlsconf: no PEM certificate in the %s", what)
	}
	return p, nil
}

// ReadPEM accepts PEM content or the path of a file holding it and returns the PEM bytes.
func ReadPEM(valueOrPath string) ([]byte, error) {
	if strings.Contains(valueOrPath, "-----BEGIN ") {
		b := []byte(valueOrPath)
		if blk, _ := pem.Decode(b); blk == nil {
			return nil, errors.New("tlsconf: value looks like PEM but does not parse")
		}
		return b, nil
	}
	if strings.TrimSpace(valueOrPath) == "" {
		return nil, errors.New("tlsconf: empty PEM value or path")
	}
	b, err := os.ReadFile(valueOrPath)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: %w", err)
	}
	if blk, _ := pem.Decode(b); blk == nil {
		return nil, fmt.Errorf("tlsconf: %s holds no PEM data", valueOrPath)
	}
	return b, nil
}
