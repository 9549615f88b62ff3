// Package kube is the provider's Kubernetes side: client configuration with the names and
// precedence of the hashicorp/kubernetes provider, NetworkAttachmentDefinitions written by
// server-side apply through the dynamic client, and node discovery.
package kube

import (
	"errors"
	"os"
	"strconv"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Config is one cluster's `kubernetes` block. Empty strings and a nil Insecure mean unset.
type Config struct {
	ConfigPath           string
	ConfigContext        string
	Host                 string
	Token                string
	ClusterCACertificate string // PEM
	ClientCertificate    string // PEM
	ClientKey            string // PEM
	Insecure             *bool
}

// Environment variables read for unset attributes, as the hashicorp/kubernetes provider
// does; KUBECONFIG is the last fallback for the kubeconfig path.
const (
	EnvConfigPath = "KUBE_CONFIG_PATH"
	EnvContext    = "KUBE_CTX"
	EnvHost       = "KUBE_HOST"
	EnvToken      = "KUBE_TOKEN"
	EnvCACert     = "KUBE_CLUSTER_CA_CERT_DATA"
	EnvClientCert = "KUBE_CLIENT_CERT_DATA"
	EnvClientKey  = "KUBE_CLIENT_KEY_DATA"
	EnvInsecure   = "KUBE_INSECURE"
)

// WithEnv fills unset attributes from the environment.
func (c Config) WithEnv() Config {
	or := func(v *string, envs ...string) {
		for _, e := range envs {
			if *v == "" {
				*v = os.Getenv(e)
			}
		}
	}
	or(&c.ConfigPath, EnvConfigPath, "KUBECONFIG")
	or(&c.ConfigContext, EnvContext)
	or(&c.Host, EnvHost)
	or(&c.Token, EnvToken)
	or(&c.ClusterCACertificate, EnvCACert)
	or(&c.ClientCertificate, EnvClientCert)
	or(&c.ClientKey, EnvClientKey)
	if c.Insecure == nil {
		if b, err := strconv.ParseBool(os.Getenv(EnvInsecure)); err == nil {
			c.Insecure = &b
		}
	}
	return c
}

// REST builds the client configuration: the kubeconfig at ConfigPath (its ConfigContext, or
// its current context), with every attribute that is set taking precedence over the
// kubeconfig's value. Without a kubeconfig, Host is required.
func (c Config) REST() (*rest.Config, error) {
	rules := &clientcmd.ClientConfigLoadingRules{}
	if c.ConfigPath != "" {
		rules.ExplicitPath = expandHome(c.ConfigPath)
	} else if c.Host == "" {
		return nil, errors.New("no Kubernetes API: set host (with token or client_certificate and client_key), or config_path, or KUBE_CONFIG_PATH or KUBECONFIG")
	}
	o := &clientcmd.ConfigOverrides{CurrentContext: c.ConfigContext}
	o.ClusterInfo.Server = c.Host
	if c.ClusterCACertificate != "" {
		o.ClusterInfo.CertificateAuthorityData = []byte(c.ClusterCACertificate)
	}
	if c.Insecure != nil {
		o.ClusterInfo.InsecureSkipTLSVerify = *c.Insecure
	}
	o.AuthInfo.Token = c.Token
	if c.ClientCertificate != "" {
		o.AuthInfo.ClientCertificateData = []byte(c.ClientCertificate)
	}
	if c.ClientKey != "" {
		o.AuthInfo.ClientKeyData = []byte(c.ClientKey)
	}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, o).ClientConfig()
	if err != nil {
		return nil, err
	}
	// Terraform calls resources ten at a time; client-go's default of 5 requests a second
	// would make a plan of hundreds of attachments wait on the client, not the server.
	rc.QPS, rc.Burst = 100, 200
	rc.UserAgent = "terraform-provider-nodenet"
	return rc, nil
}

func expandHome(p string) string {
	if len(p) > 1 && p[:2] == "~/" {
		if h, err := os.UserHomeDir(); err == nil {
			return h + p[1:]
		}
	}
	return p
}
