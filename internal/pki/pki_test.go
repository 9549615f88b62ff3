package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"testing"
	"time"
)

func parseCert(t *testing.T, p []byte) *x509.Certificate {
	t.Helper()
	b, rest := pem.Decode(p)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("no CERTIFICATE block")
	}
	if len(rest) != 0 {
		t.Fatalf("trailing data after certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newCA(t *testing.T) *CA {
	t.Helper()
	ca, err := NewCA("nodenet test CA", time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestNewCA(t *testing.T) {
	ca := newCA(t)
	c := parseCert(t, ca.CertPEM)
	if !c.IsCA || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatalf("not a CA: IsCA=%v usage=%v", c.IsCA, c.KeyUsage)
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("want ECDSA P-256, got %T", c.PublicKey)
	}
	if c.Subject.CommonName != "nodenet test CA" {
		t.Fatalf("CN %q", c.Subject.CommonName)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Fatalf("not self-signed: %v", err)
	}
}

func TestLoadCARoundTrip(t *testing.T) {
	ca := newCA(t)
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	ca2, err := LoadCA(ca.CertPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !ca2.Cert.Equal(ca.Cert) {
		t.Fatal("loaded cert differs")
	}
	// A leaf issued by the loaded CA verifies against the original.
	certPEM, _, err := ca2.IssueClient("nodenet://terraform", Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := parseCert(t, certPEM)
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}

	other := newCA(t)
	otherKey, _ := other.KeyPEM()
	if _, err := LoadCA(ca.CertPEM, otherKey); err == nil {
		t.Fatal("LoadCA accepted a mismatched key")
	}
	if _, err := LoadCA([]byte("junk"), keyPEM); err == nil {
		t.Fatal("LoadCA accepted junk")
	}
}

func TestIssueServer(t *testing.T) {
	ca := newCA(t)
	certPEM, keyPEM, err := ca.IssueServer("test-cluster1", "multicluster-test-001",
		[]net.IP{net.ParseIP("127.0.0.1")}, []string{"node1.example"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := parseCert(t, certPEM)
	if len(c.URIs) != 1 || c.URIs[0].String() != "nodenet://test-cluster1/multicluster-test-001" {
		t.Fatalf("URIs %v", c.URIs)
	}
	if NodeURI("test-cluster1", "multicluster-test-001") != c.URIs[0].String() {
		t.Fatal("NodeURI mismatch")
	}
	if len(c.IPAddresses) != 1 || !c.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Fatalf("IPs %v", c.IPAddresses)
	}
	if len(c.DNSNames) != 1 || c.DNSNames[0] != "node1.example" {
		t.Fatalf("DNS %v", c.DNSNames)
	}
	if c.IsCA {
		t.Fatal("leaf is a CA")
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("server chain: %v", err)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Fatal("server cert verified for client auth")
	}
	if err := c.VerifyHostname("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("key pair: %v", err)
	}
	k, err := ParseKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := k.(*ecdsa.PrivateKey); !ok {
		t.Fatalf("key %T", k)
	}
	// Foreign CA does not verify it.
	if _, err := c.Verify(x509.VerifyOptions{Roots: newCA(t).Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Fatal("verified against a foreign CA")
	}
}

func TestIssueClient(t *testing.T) {
	ca := newCA(t)
	certPEM, keyPEM, err := ca.IssueClient("nodenet://terraform", Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := parseCert(t, certPEM)
	if len(c.URIs) != 1 || c.URIs[0].String() != "nodenet://terraform" {
		t.Fatalf("URIs %v", c.URIs)
	}
	if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Fatalf("EKU %v", c.ExtKeyUsage)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.IssueClient("no-scheme", Options{}); err == nil {
		t.Fatal("accepted an identity without scheme")
	}
}

func TestExpiry(t *testing.T) {
	ca := newCA(t)
	nb := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	na := time.Now().Add(-time.Hour).Truncate(time.Second)
	certPEM, _, err := ca.IssueClient("nodenet://terraform", Options{NotBefore: nb.Add(-time.Hour), NotAfter: na})
	if err == nil {
		// NotBefore before the CA's own NotBefore is clamped; the window is then empty.
		t.Fatalf("issued a certificate entirely outside the CA validity: %s", certPEM)
	}

	// Within the CA's validity: explicit window honoured.
	nb = time.Now().Add(time.Hour).Truncate(time.Second)
	na = time.Now().Add(2 * time.Hour).Truncate(time.Second)
	certPEM, _, err = ca.IssueServer("c", "n", nil, nil, Options{NotBefore: nb, NotAfter: na})
	if err != nil {
		t.Fatal(err)
	}
	c := parseCert(t, certPEM)
	if !c.NotBefore.Equal(nb) || !c.NotAfter.Equal(na) {
		t.Fatalf("validity %s..%s, want %s..%s", c.NotBefore, c.NotAfter, nb, na)
	}
	vo := x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := c.Verify(vo); err == nil {
		t.Fatal("not-yet-valid certificate verified")
	}
	vo.CurrentTime = nb.Add(time.Minute)
	if _, err := c.Verify(vo); err != nil {
		t.Fatalf("valid at %s: %v", vo.CurrentTime, err)
	}
	vo.CurrentTime = na.Add(time.Minute)
	if _, err := c.Verify(vo); err == nil {
		t.Fatal("expired certificate verified")
	}

	// Defaults: about now-1m .. now+1y, clamped to the CA's NotAfter (24h here).
	certPEM, _, err = ca.IssueClient("nodenet://terraform", Options{})
	if err != nil {
		t.Fatal(err)
	}
	c = parseCert(t, certPEM)
	if c.NotAfter.After(ca.Cert.NotAfter) {
		t.Fatalf("leaf outlives CA: %s > %s", c.NotAfter, ca.Cert.NotAfter)
	}
	long, err := NewCA("long", time.Now().AddDate(5, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err = long.IssueClient("nodenet://terraform", Options{})
	if err != nil {
		t.Fatal(err)
	}
	c = parseCert(t, certPEM)
	if d := time.Until(c.NotAfter); d < 364*24*time.Hour || d > 367*24*time.Hour {
		t.Fatalf("default NotAfter in %s", d)
	}
	if d := time.Since(c.NotBefore); d < 0 || d > 2*time.Minute {
		t.Fatalf("default NotBefore %s ago", d)
	}

	if _, _, err := ca.IssueClient("nodenet://x", Options{NotBefore: na, NotAfter: nb}); err == nil {
		t.Fatal("accepted NotAfter before NotBefore")
	}
}

func TestMTLSHandshake(t *testing.T) {
	ca := newCA(t)
	sc, sk, err := ca.IssueServer("c1", "n1", []net.IP{net.ParseIP("127.0.0.1")}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cc, ck, err := ca.IssueClient("nodenet://terraform", Options{})
	if err != nil {
		t.Fatal(err)
	}
	scert, _ := tls.X509KeyPair(sc, sk)
	ccert, _ := tls.X509KeyPair(cc, ck)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{scert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			got <- err.Error()
			return
		}
		got <- tc.ConnectionState().PeerCertificates[0].URIs[0].String()
		io.WriteString(c, "ok")
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
		RootCAs:      ca.Pool(),
		Certificates: []tls.Certificate{ccert},
		ServerName:   "127.0.0.1",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if u := conn.ConnectionState().PeerCertificates[0].URIs[0].String(); u != NodeURI("c1", "n1") {
		t.Fatalf("server URI %q", u)
	}
	if s := <-got; s != "nodenet://terraform" {
		t.Fatalf("server saw %q", s)
	}
}

func TestNodeCertFiles(t *testing.T) {
	cert, key := NodeCertFiles("/etc/nodenet", "test-cluster1", "multicluster-test-001")
	if cert != "/etc/nodenet/test-cluster1_multicluster-test-001.pem" || key != "/etc/nodenet/test-cluster1_multicluster-test-001-key.pem" {
		t.Fatalf("got %s, %s", cert, key)
	}
}
