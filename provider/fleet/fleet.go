// Package fleet is the provider's side of the agent contract: it dials every node's
// nodenet-agent over mTLS, checks that the agent is the node it meant to reach, and fans
// calls out to many nodes with bounded parallelism.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nodenet/terraform-provider-nodenet/internal/pki"
	"github.com/nodenet/terraform-provider-nodenet/internal/tlsconf"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Node is one node of the inventory.
type Node struct {
	Cluster string
	Name    string
	// Agent is the agent's address, host:port.
	Agent string
	// Address is the node's own IPv4 address on the underlay ("" when not known).
	Address string
}

// Key is the node's inventory key, "<cluster>/<node>".
func (n Node) Key() string { return n.Cluster + "/" + n.Name }

// Config is what a Fleet needs.
type Config struct {
	Nodes []Node
	// PEM contents.
	CACert, ClientCert, ClientKey []byte
	// Parallelism bounds the calls in flight at once; 0 means 16.
	Parallelism int
	// Timeout bounds one call to one agent; 0 means 30 s.
	Timeout time.Duration
}

// Fleet holds one lazily dialled connection per node.
type Fleet struct {
	cfg   Config
	nodes map[string]Node

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// New checks the inventory; connections are made on first use.
func New(cfg Config) (*Fleet, error) {
	if cfg.Parallelism <= 0 {
		cfg.Parallelism = 16
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	f := &Fleet{cfg: cfg, nodes: map[string]Node{}, conns: map[string]*grpc.ClientConn{}}
	for _, n := range cfg.Nodes {
		if _, dup := f.nodes[n.Key()]; dup {
			return nil, fmt.Errorf("node %s is configured twice", n.Key())
		}
		f.nodes[n.Key()] = n
	}
	return f, nil
}

// Node returns the inventory entry for "<cluster>/<node>".
func (f *Fleet) Node(key string) (Node, bool) {
	n, ok := f.nodes[key]
	return n, ok
}

// Keys lists the inventory, sorted; with a cluster name, only that cluster's nodes.
func (f *Fleet) Keys(cluster string) []string {
	var keys []string
	for k, n := range f.nodes {
		if cluster == "" || n.Cluster == cluster {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// Clusters lists the configured cluster names, sorted.
func (f *Fleet) Clusters() []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range f.nodes {
		if !seen[n.Cluster] {
			seen[n.Cluster] = true
			out = append(out, n.Cluster)
		}
	}
	sort.Strings(out)
	return out
}

// Timeout is the per-call timeout.
func (f *Fleet) Timeout() time.Duration { return f.cfg.Timeout }

// Client returns the agent client of a node, dialling it on first use.
func (f *Fleet) Client(key string) (pb.NodeAgentClient, error) {
	n, ok := f.nodes[key]
	if !ok {
		return nil, fmt.Errorf("node %s is not in the provider's inventory (configured: %s)", key, strings.Join(f.Keys(""), ", "))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.conns[key]; ok {
		return pb.NewNodeAgentClient(c), nil
	}
	if len(f.cfg.CACert) == 0 || len(f.cfg.ClientCert) == 0 || len(f.cfg.ClientKey) == 0 {
		return nil, errors.New("the provider's tls block (ca_cert, client_cert, client_key) is required to reach agents")
	}
	tc, err := tlsconf.Client(f.cfg.CACert, f.cfg.ClientCert, f.cfg.ClientKey, pki.NodeURI(n.Cluster, n.Name))
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", key, err)
	}
	conn, err := grpc.NewClient("passthrough:///"+n.Agent, grpc.WithTransportCredentials(tlsconf.Credentials(tc)))
	if err != nil {
		return nil, fmt.Errorf("node %s: agent %s: %w", key, n.Agent, err)
	}
	f.conns[key] = conn
	return pb.NewNodeAgentClient(conn), nil
}

// Close closes every connection.
func (f *Fleet) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, c := range f.conns {
		_ = c.Close()
		delete(f.conns, k)
	}
}

// NodeError is the failure of one node in a fan-out.
type NodeError struct {
	Node string
	Err  error
}

func (e *NodeError) Error() string {
	msg := describe(e.Err)
	if strings.HasPrefix(msg, "node "+e.Node+":") {
		return msg // the agent named itself already
	}
	return e.Node + ": " + msg
}
func (e *NodeError) Unwrap() error { return e.Err }

// Unreachable tells whether the node could not be reached (as opposed to answering with an error).
func (e *NodeError) Unreachable() bool { return Unreachable(e.Err) }

// Unreachable tells whether err means the agent did not answer (as opposed to answering
// with an error, or failing authentication).
func Unreachable(err error) bool {
	if AuthFailed(err) {
		return false
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// AuthFailed tells whether the TLS handshake with the agent failed: an untrusted certificate,
// or one that names another node.
func AuthFailed(err error) bool {
	return status.Code(err) == codes.Unavailable && strings.Contains(status.Convert(err).Message(), "authentication handshake failed")
}

// describe turns a gRPC status into its message with the code in words.
func describe(err error) string {
	s, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	switch s.Code() {
	case codes.Unavailable:
		if AuthFailed(err) {
			return "mutual TLS with the agent failed: " + s.Message()
		}
		return "agent unreachable: " + s.Message()
	case codes.DeadlineExceeded:
		return "agent did not answer in time: " + s.Message()
	}
	return s.Message()
}

// Each calls fn for every key with at most Parallelism calls in flight, each bounded by the
// timeout. It returns the errors by node, sorted by node key.
func (f *Fleet) Each(ctx context.Context, keys []string, fn func(ctx context.Context, key string, c pb.NodeAgentClient) error) []*NodeError {
	sem := make(chan struct{}, f.cfg.Parallelism)
	var (
		mu   sync.Mutex
		errs []*NodeError
		wg   sync.WaitGroup
	)
	for _, key := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			err := func() error {
				c, err := f.Client(key)
				if err != nil {
					return err
				}
				cctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
				defer cancel()
				return fn(cctx, key, c)
			}()
			if err != nil {
				mu.Lock()
				errs = append(errs, &NodeError{Node: key, Err: err})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Slice(errs, func(i, j int) bool { return errs[i].Node < errs[j].Node })
	return errs
}

// Infos asks every node's agent for its NodeInfo (identity, capabilities, interfaces,
// kernel features).
func (f *Fleet) Infos(ctx context.Context, keys []string) (map[string]*pb.NodeInfo, []*NodeError) {
	return collect(ctx, f, keys, func(ctx context.Context, _ string, c pb.NodeAgentClient) (*pb.NodeInfo, bool, error) {
		ni, err := c.Info(ctx, &pb.InfoRequest{})
		return ni, err == nil, err
	})
}

// Join renders node errors one per line.
func Join(errs []*NodeError) string {
	var b strings.Builder
	for i, e := range errs {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(e.Error())
	}
	return b.String()
}
