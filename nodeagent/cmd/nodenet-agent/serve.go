package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nodenet/terraform-provider-nodenet/internal/pki"
	"github.com/nodenet/terraform-provider-nodenet/internal/tlsconf"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/server"
)

const defaultListen = "127.0.0.1:7707"

// gracefulTimeout bounds GracefulStop on SIGTERM/SIGINT.
var gracefulTimeout = 10 * time.Second

type serveOptions struct {
	cluster, node, netns           string
	listen, listenUnix             string
	listenFD                       int
	insecureUnix                   bool
	tlsCert, tlsKey, clientCA      string
	allowedClients                 listFlag
	stateDir, bootIDFile, logLevel string
	cniConfDir, cniIpamDataDir     string
	enforce                        bool
}

func serveFlags(stderr io.Writer) (*serveOptions, func([]string) error) {
	o := &serveOptions{}
	fs := newFlagSet("serve", stderr)
	fs.StringVar(&o.cluster, "cluster", "", "cluster name (required)")
	fs.StringVar(&o.node, "node", "", "node name (required)")
	fs.StringVar(&o.netns, "netns", "", "network namespace to manage, e.g. /run/netns/X (default: the agent's own)")
	fs.StringVar(&o.listen, "listen", "", "TCP address to listen on (default "+defaultListen+")")
	fs.IntVar(&o.listenFD, "listen-fd", -1, "serve on this inherited listening socket fd (systemd socket activation style)")
	fs.StringVar(&o.listenUnix, "listen-unix", "", "unix socket path to listen on")
	fs.BoolVar(&o.insecureUnix, "insecure-unix", false, "allow plaintext on the unix socket (--listen-unix only)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "server certificate (PEM file); must carry URI SAN nodenet://<cluster>/<node>")
	fs.StringVar(&o.tlsKey, "tls-key", "", "server private key (PEM file)")
	fs.StringVar(&o.clientCA, "client-ca", "", "CA that signs client certificates (PEM file)")
	fs.Var(&o.allowedClients, "allowed-client", "client identity URI allowed to connect, e.g. nodenet://terraform (repeatable; default: any client of --client-ca)")
	fs.StringVar(&o.stateDir, "state-dir", "", "directory holding the desired state (required)")
	fs.StringVar(&o.cniConfDir, "cni-conf-dir", "/etc/cni/net.d", "CNI configuration directory, where the CNI configurations of IP pools are written (only for pools whose cni attribute is set)")
	fs.StringVar(&o.cniIpamDataDir, "cni-ipam-data-dir", "", "host-local IPAM data dir the pools' CNI configurations name (default: host-local's own, /var/lib/cni/networks)")
	fs.StringVar(&o.bootIDFile, "boot-id-file", "/proc/sys/kernel/random/boot_id", "file holding the boot id")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&o.enforce, "enforce", false, "re-apply the stored state on every start, not only after a reboot")
	return o, func(args []string) error { return parse(fs, args) }
}

// check validates the flag combination without touching the system.
func (o *serveOptions) check() error {
	var missing []string
	for _, f := range []struct{ name, v string }{{"--cluster", o.cluster}, {"--node", o.node}, {"--state-dir", o.stateDir}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("serve: %s required", strings.Join(missing, ", "))
	}
	n := 0
	for _, set := range []bool{o.listen != "", o.listenFD >= 0, o.listenUnix != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errors.New("serve: give only one of --listen, --listen-fd and --listen-unix")
	}
	if n == 0 {
		o.listen = defaultListen
	}
	if o.insecureUnix && o.listenUnix == "" {
		return errors.New("serve: --insecure-unix is only allowed with --listen-unix")
	}
	tlsSet := 0
	for _, v := range []string{o.tlsCert, o.tlsKey, o.clientCA} {
		if v != "" {
			tlsSet++
		}
	}
	switch {
	case o.listenUnix != "" && o.insecureUnix:
		if tlsSet > 0 {
			return errors.New("serve: --insecure-unix and TLS flags exclude each other")
		}
	case tlsSet < 3:
		where := "TCP " + o.listen
		if o.listenFD >= 0 {
			where = fmt.Sprintf("inherited fd %d", o.listenFD)
		} else if o.listenUnix != "" {
			where = "unix socket " + o.listenUnix
		}
		return fmt.Errorf("serve: refusing to serve on %s without mutual TLS: --tls-cert, --tls-key and --client-ca are all required "+
			"(plaintext is allowed only on a unix socket with --listen-unix PATH --insecure-unix)", where)
	}
	if len(o.allowedClients) > 0 && tlsSet == 0 {
		return errors.New("serve: --allowed-client needs TLS")
	}
	return nil
}

// serverTLS loads the TLS material and checks that the server certificate names this node.
func (o *serveOptions) serverTLS() (*tls.Config, error) {
	cert, err := tlsconf.ReadPEM(o.tlsCert)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert: %w", err)
	}
	key, err := tlsconf.ReadPEM(o.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-key: %w", err)
	}
	ca, err := tlsconf.ReadPEM(o.clientCA)
	if err != nil {
		return nil, fmt.Errorf("--client-ca: %w", err)
	}
	if err := checkServerIdentity(cert, o.cluster, o.node); err != nil {
		return nil, fmt.Errorf("--tls-cert %s: %w", o.tlsCert, err)
	}
	return tlsconf.Server(cert, key, ca, o.allowedClients)
}

// checkServerIdentity requires the leaf of certPEM to carry URI SAN nodenet://cluster/node.
func checkServerIdentity(certPEM []byte, cluster, node string) error {
	blk, _ := pem.Decode(certPEM)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return errors.New("no CERTIFICATE PEM block")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return err
	}
	want := pki.NodeURI(cluster, node)
	got := tlsconf.URIs(c)
	for _, u := range got {
		if u == want {
			return nil
		}
	}
	return fmt.Errorf("certificate identity %v does not name this agent (%s); issue one for this node", got, want)
}

func readBootID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("boot id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", fmt.Errorf("boot id: %s is empty", path)
	}
	return id, nil
}

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// inheritedListener takes over the listening socket fd. Anything else is refused with an
// explanation before net sees it: net would only say "socket operation on non-socket", and
// closing its *os.File would close whatever the fd is, such as the runtime's epoll fd.
func inheritedListener(fd int) (net.Listener, error) {
	if err := checkListening(fd); err != nil {
		return nil, fmt.Errorf("--listen-fd %d: fd %d is not a listening socket inherited from the parent process (%w); "+
			"--listen-fd is for systemd socket activation and nodenet-agent lab (restart a lab agent with "+
			"`nodenet-agent lab start --node NAME`); to listen yourself use --listen ADDR or --listen-unix PATH", fd, fd, err)
	}
	f := os.NewFile(uintptr(fd), fmt.Sprintf("listen-fd-%d", fd))
	defer f.Close() // FileListener dups it
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("--listen-fd %d: %w; pass a listening TCP or unix stream socket", fd, err)
	}
	return ln, nil
}

// checkListening says why fd is not a listening socket, or returns nil.
func checkListening(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		if errors.Is(err, unix.EBADF) {
			return fmt.Errorf("%w: nothing is open on it", err)
		}
		return fmt.Errorf("fstat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		what := fileKind(st.Mode)
		// Name it: when nothing was passed, the runtime has opened a file of its own there
		// (a cgroup file), which says more than "a regular file".
		if target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd)); err == nil {
			what += " (" + target + ")"
		}
		return fmt.Errorf("%w: it is %s", unix.ENOTSOCK, what)
	}
	listening, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return fmt.Errorf("getsockopt SO_ACCEPTCONN: %w", err)
	}
	if listening == 0 {
		return errors.New("it is a socket that does not listen")
	}
	return nil
}

func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "a regular file"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFIFO:
		return "a pipe"
	}
	return "not a socket (e.g. an epoll or event fd)"
}

func (o *serveOptions) listener() (net.Listener, error) {
	switch {
	case o.listenFD >= 0:
		return inheritedListener(o.listenFD)
	case o.listenUnix != "":
		if fi, err := os.Lstat(o.listenUnix); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(o.listenUnix) // stale socket of an earlier run
		}
		ln, err := net.Listen("unix", o.listenUnix)
		if err != nil {
			return nil, err
		}
		if err := os.Chmod(o.listenUnix, 0o600); err != nil {
			ln.Close()
			return nil, err
		}
		return ln, nil
	default:
		return net.Listen("tcp", o.listen)
	}
}

func runServe(args []string, _, stderr io.Writer) error {
	o, parseArgs := serveFlags(stderr)
	if err := parseArgs(args); err != nil {
		return err
	}
	if err := o.check(); err != nil {
		return err
	}
	var ln net.Listener
	if o.listenFD >= 0 {
		// Before anything opens a file: a free fd would be taken by the next open (a
		// certificate, the runtime's epoll fd) and then look like a file passed to us.
		var err error
		if ln, err = inheritedListener(o.listenFD); err != nil {
			return err
		}
		defer ln.Close()
	}
	log, err := newLogger(o.logLevel, stderr)
	if err != nil {
		return err
	}
	var creds credentials.TransportCredentials
	if o.insecureUnix {
		creds = insecure.NewCredentials()
		log.Warn("serving plaintext on a unix socket (--insecure-unix): anyone who can open the socket controls this node's networking", "socket", o.listenUnix)
	} else {
		cfg, err := o.serverTLS()
		if err != nil {
			return err
		}
		creds = tlsconf.LogRefusals(credentials.NewTLS(cfg), log)
	}
	bootID, err := readBootID(o.bootIDFile)
	if err != nil {
		return err
	}
	// Refuse to serve without the probe: the provider's plan-time checks rely on the
	// features it reports, and a warning in the log goes unnoticed.
	if _, _, err := dataplane.ProbeKernelFeatures(); err != nil {
		return fmt.Errorf("serve: %w; see examples/agent/nodenet-agent.service for what the agent needs", err)
	}
	if ln == nil {
		if ln, err = o.listener(); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Info("starting", "allowed_clients", strings.Join(o.allowedClients, ","))
	err = server.Run(ctx, server.AgentConfig{
		Cluster: o.cluster, Node: o.node, Version: agentVersion(), NetnsPath: o.netns,
		Creds: creds, StateDir: o.stateDir, BootID: bootID, Logger: log, Enforce: o.enforce,
		GracefulTimeout: gracefulTimeout, CNIConfDir: o.cniConfDir, CNIIpamDataDir: o.cniIpamDataDir,
	}, ln)
	if err != nil {
		return err
	}
	if o.listenUnix != "" {
		os.Remove(o.listenUnix)
	}
	return nil
}
