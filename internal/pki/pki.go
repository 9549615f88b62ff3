// Package pki makes the certificates nodenet uses for mTLS between the Terraform provider
// (client) and nodenet-agent (server): a CA, one server certificate per node whose URI SAN
// names the node (nodenet://<cluster>/<node>), and client certificates with an identity URI.
//
// Keys are ECDSA P-256. Everything is PEM: certificates as "CERTIFICATE", keys as PKCS#8
// "PRIVATE KEY".
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"path/filepath"
	"time"
)

// CA is a certificate authority that can issue server and client certificates.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
}

// Options sets the validity of an issued certificate. Zero values mean
// NotBefore = now - 1 minute and NotAfter = now + 1 year.
type Options struct {
	NotBefore, NotAfter time.Time
}

func (o Options) window() (time.Time, time.Time, error) {
	now := time.Now()
	nb, na := o.NotBefore, o.NotAfter
	if nb.IsZero() {
		nb = now.Add(-time.Minute)
	}
	if na.IsZero() {
		na = now.AddDate(1, 0, 0)
	}
	if !na.After(nb) {
		return time.Time{}, time.Time{}, fmt.Errorf("pki: NotAfter %s is not after NotBefore %s", na, nb)
	}
	return nb, na, nil
}

// NodeURI is the identity of a node agent: "nodenet://<cluster>/<node>".
func NodeURI(cluster, node string) string {
	return "nodenet://" + cluster + "/" + node
}

// NodeCertFiles returns where a node's server certificate and key live in dir:
// <cluster>_<node>.pem and <cluster>_<node>-key.pem. The cluster is part of the name because
// node names are only unique within a cluster. `nodenet-agent certs` and the lab both use it,
// so files can be moved between them and examples can name them.
func NodeCertFiles(dir, cluster, node string) (cert, key string) {
	base := cluster + "_" + node
	return filepath.Join(dir, base+".pem"), filepath.Join(dir, base+"-key.pem")
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func newKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func keyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	sum := sha1.Sum(der)
	return sum[:], nil
}

func encodeKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("pki: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// NewCA creates a self-signed ECDSA P-256 CA valid from one minute ago until notAfter
// (zero notAfter: ten years).
func NewCA(commonName string, notAfter time.Time) (*CA, error) {
	if commonName == "" {
		return nil, errors.New("pki: empty CA common name")
	}
	now := time.Now()
	if notAfter.IsZero() {
		notAfter = now.AddDate(10, 0, 0)
	}
	nb := now.Add(-time.Minute)
	if !notAfter.After(nb) {
		return nil, fmt.Errorf("pki: CA notAfter %s is in the past", notAfter)
	}
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	ski, err := keyID(key.Public())
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"nodenet"}},
		NotBefore:             nb,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodeCert(der)}, nil
}

// LoadCA parses a CA certificate and its private key (PKCS#8, SEC1 "EC PRIVATE KEY" or
// PKCS#1 "RSA PRIVATE KEY") and checks that they belong together.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, errors.New("pki: no CERTIFICATE PEM block in CA cert")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CA cert: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("pki: certificate is not a CA")
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, errors.New("pki: CA key does not match CA certificate")
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodeCert(cb.Bytes)}, nil
}

// ParseKey parses a PEM private key: PKCS#8, SEC1 EC or PKCS#1 RSA.
func ParseKey(keyPEM []byte) (crypto.Signer, error) {
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, errors.New("pki: no PEM block in key")
	}
	var k any
	var err error
	switch kb.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(kb.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(kb.Bytes)
	default:
		return nil, fmt.Errorf("pki: unsupported key PEM type %q", kb.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("pki: parse key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: key type %T cannot sign", k)
	}
	return s, nil
}

// KeyPEM returns the CA private key as PKCS#8 PEM.
func (ca *CA) KeyPEM() ([]byte, error) {
	return encodeKey(ca.Key)
}

// Pool returns a cert pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

func (ca *CA) issue(tmpl *x509.Certificate, o Options) (certPEM, keyPEM []byte, err error) {
	nb, na, err := o.window()
	if err != nil {
		return nil, nil, err
	}
	if na.After(ca.Cert.NotAfter) {
		// A leaf outliving its CA would fail verification anyway; clamp to make that explicit.
		na = ca.Cert.NotAfter
	}
	if nb.Before(ca.Cert.NotBefore) {
		nb = ca.Cert.NotBefore
	}
	if !na.After(nb) {
		return nil, nil, fmt.Errorf("pki: validity window empty within the CA's validity (%s .. %s)", nb, na)
	}
	key, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	ski, err := keyID(key.Public())
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = sn
	tmpl.NotBefore = nb
	tmpl.NotAfter = na
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	tmpl.SubjectKeyId = ski
	tmpl.AuthorityKeyId = ca.Cert.SubjectKeyId
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: create certificate: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}

// IssueServer issues a server certificate for one node agent: URI SAN
// nodenet://<cluster>/<node>, the given IP and DNS SANs, ExtKeyUsageServerAuth.
func (ca *CA) IssueServer(cluster, node string, ips []net.IP, dnsNames []string, o Options) (certPEM, keyPEM []byte, err error) {
	if cluster == "" || node == "" {
		return nil, nil, errors.New("pki: server certificate needs cluster and node")
	}
	u, err := url.Parse(NodeURI(cluster, node))
	if err != nil {
		return nil, nil, fmt.Errorf("pki: node URI: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: node, Organization: []string{"nodenet"}, OrganizationalUnit: []string{cluster}},
		URIs:        []*url.URL{u},
		IPAddresses: append([]net.IP(nil), ips...),
		DNSNames:    append([]string(nil), dnsNames...),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	return ca.issue(tmpl, o)
}

// IssueClient issues a client certificate with URI SAN identityURI (for example
// "nodenet://terraform") and ExtKeyUsageClientAuth.
func (ca *CA) IssueClient(identityURI string, o Options) (certPEM, keyPEM []byte, err error) {
	u, err := url.Parse(identityURI)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: identity URI: %w", err)
	}
	if u.Scheme == "" {
		return nil, nil, fmt.Errorf("pki: identity URI %q has no scheme", identityURI)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: identityURI, Organization: []string{"nodenet"}},
		URIs:        []*url.URL{u},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return ca.issue(tmpl, o)
}
