package lab

// A harness for BIRD 2 (Debian package bird2), the independent BGP speaker the tests peer
// nodenet with: start a daemon in a lab namespace, ask it questions through birdc, and
// render the configurations the tests need (templates in birdconf/).

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"text/template"
	"time"
)

// BirdStartTimeout bounds how long StartBird waits for the control socket to answer.
var BirdStartTimeout = 15 * time.Second

// Bird is one BIRD 2 daemon running in a network namespace of the lab. Run at most one
// per namespace: BIRD treats every kernel route with protocol "bird" (12) as its own.
type Bird struct {
	NS            string // network namespace it runs in
	Dir           string // work dir: ConfigFile and LogFile
	ConfigFile    string // <Dir>/bird.conf
	ControlSocket string // short path (unix socket paths are limited to 108 bytes)
	LogFile       string // <Dir>/bird.log: BIRD's stdout and stderr (configs log to stderr)
	PID           int

	sockDir string // temporary dir holding ControlSocket when Dir was too long, or ""
	exited  chan struct{}
	waitErr error
}

// StartBird writes cfg (a whole BIRD 2 configuration) to <dir>/bird.conf and runs
// `ip netns exec <ns> bird -f -c <cfg> -s <ctl>` in the foreground (ip execs bird, so
// PID is BIRD's own). It returns once `birdc show status` answers; on failure the
// daemon is stopped and the error includes the log.
func StartBird(ns, dir, cfg string) (*Bird, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	b := &Bird{NS: ns, Dir: dir, ConfigFile: filepath.Join(dir, "bird.conf"), LogFile: filepath.Join(dir, "bird.log"), exited: make(chan struct{})}
	if err := b.placeSocket(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(b.ConfigFile, []byte(cfg), 0o644); err != nil {
		b.removeSockDir()
		return nil, err
	}
	logf, err := os.OpenFile(b.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		b.removeSockDir()
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command("ip", "netns", "exec", ns, "bird", "-f", "-c", b.ConfigFile, "-s", b.ControlSocket)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig: BIRD dies with the test process; startChild forks from a thread that
	// never exits, so the signal does not fire early.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := startChild(cmd); err != nil {
		b.removeSockDir()
		return nil, fmt.Errorf("start bird in %s: %w", ns, err)
	}
	b.PID = cmd.Process.Pid
	go func() { b.waitErr = cmd.Wait(); close(b.exited) }()
	if err := b.waitReady(); err != nil {
		return nil, errors.Join(err, b.Stop())
	}
	return b, nil
}

// placeSocket puts the control socket in Dir when the path is short enough, else in a
// new directory under /tmp.
func (b *Bird) placeSocket() error {
	b.ControlSocket = filepath.Join(b.Dir, "bird.ctl")
	if len(b.ControlSocket) < 100 {
		return nil
	}
	d, err := os.MkdirTemp("", "bird")
	if err != nil {
		return err
	}
	b.sockDir, b.ControlSocket = d, filepath.Join(d, "ctl")
	return nil
}

func (b *Bird) removeSockDir() {
	if b.sockDir != "" {
		os.RemoveAll(b.sockDir)
	}
}

func (b *Bird) waitReady() error {
	deadline := time.Now().Add(BirdStartTimeout)
	for {
		out, err := b.Birdc("show", "status")
		if err == nil && strings.Contains(out, "Daemon is up and running") {
			return nil
		}
		select {
		case <-b.exited:
			return fmt.Errorf("bird in %s exited: %v; log %s:\n%s", b.NS, b.waitErr, b.LogFile, b.log())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bird in %s: no answer on %s after %s: %v %s; log:\n%s", b.NS, b.ControlSocket, BirdStartTimeout, err, out, b.log())
		}
	}
}

func (b *Bird) log() string {
	data, _ := os.ReadFile(b.LogFile)
	return string(data)
}

// Stop sends SIGTERM to the daemon (this PID only), waits, and kills it after StopTimeout.
// It removes no route: the configs decide what BIRD leaves in the kernel (persist).
// Stop is idempotent; it reports an exit other than by SIGTERM.
func (b *Bird) Stop() error {
	defer b.removeSockDir()
	select {
	case <-b.exited:
	default:
		_ = syscall.Kill(b.PID, syscall.SIGTERM)
		select {
		case <-b.exited:
		case <-time.After(StopTimeout):
			_ = syscall.Kill(b.PID, syscall.SIGKILL)
			<-b.exited
			return fmt.Errorf("bird in %s (pid %d) ignored SIGTERM for %s; killed", b.NS, b.PID, StopTimeout)
		}
	}
	var ee *exec.ExitError
	if b.waitErr != nil && !(errors.As(b.waitErr, &ee) && signalled(ee, syscall.SIGTERM)) {
		return fmt.Errorf("bird in %s (pid %d): %v; log %s", b.NS, b.PID, b.waitErr, b.LogFile)
	}
	return nil
}

// Birdc runs `birdc -s <ctl> <args>` (from the root namespace: the socket is a file) and
// returns its output without the "BIRD x.y ready." banner. BIRD's error replies
// (syntax errors, unknown protocol, ...) are errors too.
func (b *Bird) Birdc(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "birdc", append([]string{"-s", b.ControlSocket}, args...)...).CombinedOutput()
	s := string(out)
	if i := strings.Index(s, " ready.\n"); i >= 0 && strings.HasPrefix(s, "BIRD ") {
		s = s[i+len(" ready.\n"):]
	}
	if err == nil && birdcError(s) {
		err = errors.New("error reply")
	}
	if err != nil {
		return s, fmt.Errorf("birdc %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(s))
	}
	return s, nil
}

// birdcError recognizes birdc's error replies, which exit 0.
func birdcError(s string) bool {
	first, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.HasPrefix(first, "syntax error") || strings.Contains(first, "not found") ||
		strings.HasPrefix(first, "Unable to connect")
}

// BirdProtocol is one line of `show protocols`.
type BirdProtocol struct {
	Name, Proto, Table, State, Since string
	Info                             string // e.g. "Established", "Active  Socket: ..."
}

var timeOfDay = regexp.MustCompile(`^\d{2}:\d{2}:\d{2}`)

// Protocols parses `show protocols`.
func (b *Bird) Protocols() (map[string]BirdProtocol, error) {
	out, err := b.Birdc("show", "protocols")
	if err != nil {
		return nil, err
	}
	return parseProtocols(out), nil
}

func parseProtocols(out string) map[string]BirdProtocol {
	m := map[string]BirdProtocol{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] == "Name" {
			continue
		}
		p := BirdProtocol{Name: f[0], Proto: f[1], Table: f[2], State: f[3], Since: f[4]}
		rest := f[5:]
		if len(rest) > 0 && timeOfDay.MatchString(rest[0]) { // "iso long" time: date and time
			p.Since += " " + rest[0]
			rest = rest[1:]
		}
		p.Info = strings.Join(rest, " ")
		m[p.Name] = p
	}
	return m
}

// WaitEstablished polls until every named BGP protocol is Established. On timeout the
// error shows `show protocols all <name>` of those that are not.
func (b *Bird) WaitEstablished(ctx context.Context, names ...string) error {
	for {
		ps, err := b.Protocols()
		var missing []string
		for _, n := range names {
			if p, ok := ps[n]; err != nil || !ok || !strings.HasPrefix(p.Info, "Established") {
				missing = append(missing, n)
			}
		}
		if err == nil && len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("bird in %s: not established: %v (%v)", b.NS, missing, err)
			for _, n := range missing {
				out, _ := b.Birdc("show", "protocols", "all", n)
				msg += "\n" + out
			}
			return errors.New(msg)
		case <-b.exited:
			return fmt.Errorf("bird in %s exited: %v; log:\n%s", b.NS, b.waitErr, b.log())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Routes returns the prefixes in a BIRD table (e.g. "master4"), each once, in BIRD's order.
func (b *Bird) Routes(table string) ([]string, error) {
	out, err := b.Birdc("show", "route", "table", table)
	if err != nil {
		return nil, err
	}
	return parseRoutes(out), nil
}

func parseRoutes(out string) []string {
	var prefixes []string
	seen := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		if line == "" || line[0] == ' ' || line[0] == '\t' {
			continue // next hops and further routes of the same prefix
		}
		f := strings.Fields(line)
		if p, err := netip.ParsePrefix(f[0]); err == nil && !seen[p.String()] {
			seen[p.String()] = true
			prefixes = append(prefixes, p.String())
		}
	}
	return prefixes
}

// Configure rewrites the config file with cfg and runs `birdc configure`. Unless BIRD
// replies that it reconfigured, the old file is put back (BIRD keeps running the old
// config then) and the reply is in the error.
func (b *Bird) Configure(cfg string) error {
	old, err := os.ReadFile(b.ConfigFile)
	if err != nil {
		return err
	}
	if err := os.WriteFile(b.ConfigFile, []byte(cfg), 0o644); err != nil {
		return err
	}
	out, err := b.Birdc("configure")
	if err == nil && (strings.Contains(out, "Reconfigured") || strings.Contains(out, "Reconfiguration in progress") ||
		strings.Contains(out, "queueing new config")) {
		return nil
	}
	if werr := os.WriteFile(b.ConfigFile, old, 0o644); werr != nil {
		err = errors.Join(err, werr)
	}
	return fmt.Errorf("bird in %s: configure: %v: %s", b.NS, err, strings.TrimSpace(out))
}

//go:embed birdconf
var birdconfFS embed.FS

var (
	torTmpl    = template.Must(template.ParseFS(birdconfFS, "birdconf/tor.cfg.tmpl"))
	calicoTmpl = template.Must(template.ParseFS(birdconfFS, "birdconf/calico/*.tmpl"))
)

// BirdNeighbor is one BGP neighbour of a rendered config.
type BirdNeighbor struct {
	Name     string // BIRD protocol name; CalicoSeedConfig: "" -> Mesh_10_20_30_31 / Global_...
	IP       netip.Addr
	ASN      uint32 // CalicoSeedConfig: 0 -> the node's ASN (a mesh peer)
	Password string // TCP MD5 password; "" = none
	Multihop bool   // TorConfig only (Calico's template always sets multihop)
}

// BirdStatic is a route a ToR originates: via an interface of its namespace, or a
// blackhole when Via is "".
type BirdStatic struct {
	Prefix netip.Prefix
	Via    string
}

// TorConfig is a ToR / office router: it originates Statics, exports static and learned
// routes to every neighbour, and programs learned BGP routes into its namespace's kernel.
type TorConfig struct {
	RouterID  netip.Addr
	ASN       uint32
	Neighbors []BirdNeighbor
	Statics   []BirdStatic
}

// Render returns the bird.conf text.
func (c TorConfig) Render() (string, error) {
	for _, n := range c.Neighbors {
		if err := n.check(); err != nil {
			return "", err
		}
	}
	return render(torTmpl, "tor.cfg.tmpl", c)
}

// CalicoSeedConfig is the bird.cfg + bird_ipam.cfg + bird_aggr.cfg of the Calico demo in
// seed 004, ported to BIRD 2, with the seed's addresses as parameters. Neighbours with the
// node's ASN go to the node-to-node mesh section, others to the global peers.
type CalicoSeedConfig struct {
	NodeIP    netip.Addr   // router id and BGP source address (seed: 10.20.30.30)
	ASN       uint32       // seed: 64512
	Block     netip.Prefix // the node's IPAM block (seed: 10.244.166.128/26)
	Pool      netip.Prefix // the IP pool (seed: 10.244.0.0/16)
	Neighbors []BirdNeighbor
}

// Render returns the bird.conf text.
func (c CalicoSeedConfig) Render() (string, error) {
	v := struct {
		CalicoSeedConfig
		Mesh, Global []BirdNeighbor
	}{CalicoSeedConfig: c}
	for _, n := range c.Neighbors {
		id := strings.ReplaceAll(n.IP.String(), ".", "_")
		if n.ASN == 0 || n.ASN == c.ASN {
			n.ASN = c.ASN
			n.Name = or(n.Name, "Mesh_"+id)
			v.Mesh = append(v.Mesh, n)
		} else {
			n.Name = or(n.Name, "Global_"+id)
			v.Global = append(v.Global, n)
		}
		if err := n.check(); err != nil {
			return "", err
		}
	}
	return render(calicoTmpl, "bird.cfg.tmpl", v)
}

var birdSymbol = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// check rejects what would break out of the config syntax.
func (n BirdNeighbor) check() error {
	if !birdSymbol.MatchString(n.Name) || !n.IP.IsValid() || n.ASN == 0 || strings.ContainsAny(n.Password, "\"\\\n") {
		return fmt.Errorf("bird neighbour %q %v AS%d: bad name, address, ASN or password", n.Name, n.IP, n.ASN)
	}
	return nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func render(t *template.Template, name string, data any) (string, error) {
	var sb strings.Builder
	if err := t.ExecuteTemplate(&sb, name, data); err != nil {
		return "", err
	}
	return sb.String(), nil
}
