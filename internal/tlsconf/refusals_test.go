package tlsconf

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/nodenet/terraform-provider-nodenet/internal/pki"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lineWith waits for a log line containing substr and returns it.
func (s *syncBuffer) lineWith(substr string, wait time.Duration) string {
	for deadline := time.Now().Add(wait); ; time.Sleep(10 * time.Millisecond) {
		for _, l := range strings.Split(s.String(), "\n") {
			if strings.Contains(l, substr) {
				return l
			}
		}
		if time.Now().After(deadline) {
			return ""
		}
	}
}

// tlsAttempt runs a client handshake against addr and returns the client's local address,
// which is the peer address the agent sees.
func tlsAttempt(t *testing.T, addr string, caPEM []byte, c *pair) string {
	t.Helper()
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}, InsecureSkipVerify: true}
	if c != nil {
		kp, err := tls.X509KeyPair(c.cert, c.key)
		if err != nil {
			t.Fatal(err)
		}
		// Send it whatever the server asks for: Go clients would send no certificate
		// rather than one of another CA, other clients do send it.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil }
	}
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(5 * time.Second))
	tc := tls.Client(raw, cfg)
	// TLS 1.3: the client finishes first; the read waits for the server's verdict.
	if err := tc.Handshake(); err == nil {
		tc.Read(make([]byte, 1))
	}
	return raw.LocalAddr().String()
}

func TestLogRefusals(t *testing.T) {
	ca := newCA(t, "test ca")
	other := newCA(t, "other ca")
	srv := server(t, ca, "c1", "n1")
	good := client(t, ca, "nodenet://terraform", pki.Options{})
	foreign := client(t, other, "nodenet://terraform", pki.Options{})
	expired := client(t, ca, "nodenet://terraform", pki.Options{
		NotBefore: time.Now().Add(-50 * time.Second), NotAfter: time.Now().Add(-30 * time.Second)})
	stranger := client(t, ca, "nodenet://stranger", pki.Options{})

	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	gs := grpc.NewServer(grpc.Creds(LogRefusals(credentials.NewTLS(mustServer(t, srv, ca.CertPEM, []string{"nodenet://terraform"})), log)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	addr := ln.Addr().String()

	for _, tc := range []struct {
		name    string
		attempt func() string
		reason  string
	}{
		{"no client certificate", func() string { return tlsAttempt(t, addr, ca.CertPEM, nil) }, "client didn't provide a certificate"},
		{"client from another CA", func() string { return tlsAttempt(t, addr, ca.CertPEM, &foreign) }, "certificate signed by unknown authority"},
		{"expired client", func() string { return tlsAttempt(t, addr, ca.CertPEM, &expired) }, "expired"},
		{"identity not allowed", func() string { return tlsAttempt(t, addr, ca.CertPEM, &stranger) }, "nodenet://stranger is not allowed"},
		{"plaintext client", func() string {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
			c.Read(make([]byte, 1))
			return c.LocalAddr().String()
		}, "does not look like a TLS handshake"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer := tc.attempt()
			line := logs.lineWith("peer="+peer+" ", 5*time.Second)
			if line == "" {
				t.Fatalf("no log line names peer %s:\n%s", peer, logs.String())
			}
			for _, want := range []string{"level=WARN", `msg="refused TLS handshake"`, "reason=", tc.reason, "hint="} {
				if !strings.Contains(line, want) {
					t.Errorf("log line lacks %q: %s", want, line)
				}
			}
		})
	}

	t.Run("good client", func(t *testing.T) {
		before := strings.Count(logs.String(), "refused")
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(Credentials(mustClient(t, ca.CertPEM, good, pki.NodeURI("c1", "n1")))))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		// No service is registered: Unimplemented proves the handshake went through.
		err = cc.Invoke(t.Context(), "/nodenet.test.Nothing/Call", &emptypb.Empty{}, &emptypb.Empty{})
		if status.Code(err) != codes.Unimplemented {
			t.Fatalf("call over a good handshake: %v", err)
		}
		if after := strings.Count(logs.String(), "refused"); after != before {
			t.Fatalf("good client logged as refused:\n%s", logs.String())
		}
	})
}
