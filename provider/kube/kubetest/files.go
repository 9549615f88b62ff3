package kubetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/nodenet/terraform-provider-nodenet/internal/pki"
)

// writeFiles makes the cluster's CA, serving and client certificates, token file,
// service-account key pair and kubeconfig under Dir.
func (c *Cluster) writeFiles() error {
	ca, err := pki.NewCA("kubetest-"+c.Name, time.Time{})
	if err != nil {
		return err
	}
	c.CAPEM = ca.CertPEM
	c.CAFile = filepath.Join(c.Dir, "ca.pem")
	cert, key, err := ca.IssueServer(c.Name, "kube-apiserver", []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"}, pki.Options{})
	if err != nil {
		return err
	}
	if c.ClientCertPEM, c.ClientKeyPEM, err = ca.IssueClient("nodenet://kubetest", pki.Options{}); err != nil {
		return err
	}
	saKey, saPub, err := serviceAccountKeys()
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"ca.pem": c.CAPEM, "apiserver.pem": cert, "apiserver-key.pem": key,
		"tokens.csv": []byte(Token + ",nodenet-test,nodenet-test,\"system:masters\"\n"),
		"sa-key.pem": saKey, "sa.pub": saPub,
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(c.Dir, name), b, 0o600); err != nil {
			return err
		}
	}
	// The server address is only known once the ports are chosen; Start rewrites it.
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	return nil
}

// serviceAccountKeys is an ECDSA key pair for signing service-account tokens (ES256).
func serviceAccountKeys() (keyPEM, pubPEM []byte, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), nil
}

// withCodec is cfg set up for an unversioned REST client (raw GETs like /readyz).
func withCodec(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &schema.GroupVersion{}
	c.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	return c
}
