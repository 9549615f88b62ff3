package tlsconf

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

type pair struct{ cert, key []byte }

func newCA(t *testing.T, name string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(name, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func server(t *testing.T, ca *pki.CA, cluster, node string) pair {
	t.Helper()
	c, k, err := ca.IssueServer(cluster, node, []net.IP{net.IPv4(127, 0, 0, 1)}, nil, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return pair{c, k}
}

func client(t *testing.T, ca *pki.CA, uri string, o pki.Options) pair {
	t.Helper()
	c, k, err := ca.IssueClient(uri, o)
	if err != nil {
		t.Fatal(err)
	}
	return pair{c, k}
}

// handshake runs a TLS handshake over TCP plus one byte each way and returns the server's
// and the client's errors.
func handshake(t *testing.T, scfg, ccfg *tls.Config) (serr, cerr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		tc := tls.Server(c, scfg)
		if err := tc.Handshake(); err != nil {
			done <- err
			return
		}
		buf := make([]byte, 1)
		if _, err := tc.Read(buf); err != nil {
			done <- err
			return
		}
		_, err = tc.Write(buf)
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	tc := tls.Client(c, ccfg)
	cerr = tc.Handshake()
	if cerr == nil {
		_, cerr = tc.Write([]byte{1})
	}
	if cerr == nil {
		_, cerr = tc.Read(make([]byte, 1))
	}
	if cerr != nil {
		c.Close()
	}
	return <-done, cerr
}

func mustServer(t *testing.T, s pair, caPEM []byte, allowed []string) *tls.Config {
	t.Helper()
	cfg, err := Server(s.cert, s.key, caPEM, allowed)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func mustClient(t *testing.T, caPEM []byte, c pair, expect string) *tls.Config {
	t.Helper()
	cfg, err := Client(caPEM, c.cert, c.key, expect)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestHandshake(t *testing.T) {
	ca := newCA(t, "test ca")
	other := newCA(t, "other ca")
	srv := server(t, ca, "c1", "n1")
	good := client(t, ca, "nodenet://terraform", pki.Options{})
	foreign := client(t, other, "nodenet://terraform", pki.Options{})
	// pki clamps a leaf into its CA's validity, which starts a minute ago.
	expired := client(t, ca, "nodenet://terraform", pki.Options{
		NotBefore: time.Now().Add(-50 * time.Second), NotAfter: time.Now().Add(-30 * time.Second)})
	stranger := client(t, ca, "nodenet://stranger", pki.Options{})
	want := pki.NodeURI("c1", "n1")

	t.Run("good", func(t *testing.T) {
		serr, cerr := handshake(t, mustServer(t, srv, ca.CertPEM, []string{"nodenet://terraform"}), mustClient(t, ca.CertPEM, good, want))
		if serr != nil || cerr != nil {
			t.Fatalf("server: %v, client: %v", serr, cerr)
		}
	})
	t.Run("client from another CA", func(t *testing.T) {
		serr, cerr := handshake(t, mustServer(t, srv, ca.CertPEM, nil), mustClient(t, ca.CertPEM, foreign, want))
		if serr == nil || cerr == nil {
			t.Fatalf("handshake accepted: server %v, client %v", serr, cerr)
		}
		t.Logf("server: %v", serr)
	})
	t.Run("expired client", func(t *testing.T) {
		serr, cerr := handshake(t, mustServer(t, srv, ca.CertPEM, nil), mustClient(t, ca.CertPEM, expired, want))
		if serr == nil || cerr == nil || !strings.Contains(serr.Error(), "expired") {
			t.Fatalf("want expiry refusal: server %v, client %v", serr, cerr)
		}
	})
	t.Run("client not allowed", func(t *testing.T) {
		serr, cerr := handshake(t, mustServer(t, srv, ca.CertPEM, []string{"nodenet://terraform"}), mustClient(t, ca.CertPEM, stranger, want))
		if serr == nil || cerr == nil || !strings.Contains(serr.Error(), "nodenet://stranger is not allowed") {
			t.Fatalf("want identity refusal: server %v, client %v", serr, cerr)
		}
	})
	t.Run("server from another CA", func(t *testing.T) {
		osrv := server(t, other, "c1", "n1")
		_, cerr := handshake(t, mustServer(t, osrv, ca.CertPEM, nil), mustClient(t, ca.CertPEM, good, want))
		if cerr == nil || !strings.Contains(cerr.Error(), "not trusted") {
			t.Fatalf("want untrusted server refused, got %v", cerr)
		}
	})
	t.Run("server identity mismatch", func(t *testing.T) {
		_, cerr := handshake(t, mustServer(t, srv, ca.CertPEM, nil), mustClient(t, ca.CertPEM, good, "nodenet://c1/n2"))
		if cerr == nil || !strings.Contains(cerr.Error(), "presented identity nodenet://c1/n1, expected nodenet://c1/n2") {
			t.Fatalf("want identity mismatch, got %v", cerr)
		}
	})
}

func TestCredentialsNameAddress(t *testing.T) {
	ca := newCA(t, "test ca")
	srv := server(t, ca, "c1", "n1")
	good := client(t, ca, "nodenet://terraform", pki.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	scfg := mustServer(t, srv, ca.CertPEM, nil)
	scfg.NextProtos = []string{"h2"}
	go func() {
		c, err := ln.Accept()
		if err == nil {
			tls.Server(c, scfg).Handshake()
			c.Close()
		}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	creds := Credentials(mustClient(t, ca.CertPEM, good, "nodenet://a/b"))
	_, _, err = creds.ClientHandshake(t.Context(), ln.Addr().String(), raw)
	want := "agent at " + ln.Addr().String() + " presented identity nodenet://c1/n1, expected nodenet://a/b"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

func TestReadPEM(t *testing.T) {
	ca := newCA(t, "test ca")
	if b, err := ReadPEM(string(ca.CertPEM)); err != nil || string(b) != string(ca.CertPEM) {
		t.Fatalf("inline: %v", err)
	}
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadPEM(p); err != nil || string(b) != string(ca.CertPEM) {
		t.Fatalf("file: %v", err)
	}
	if _, err := ReadPEM(filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Fatal("missing file accepted")
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("hello"), 0o644)
	if _, err := ReadPEM(bad); err == nil || !strings.Contains(err.Error(), "no PEM") {
		t.Fatalf("non-PEM file: %v", err)
	}
}
