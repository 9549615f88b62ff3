package server

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// PeerIdentity is the URI SAN of the client certificate of the RPC's peer, or its address
// when there is none (plaintext unix socket).
func PeerIdentity(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "unknown"
	}
	if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
		leaf := ti.State.PeerCertificates[0]
		if len(leaf.URIs) > 0 {
			return leaf.URIs[0].String()
		}
		return "cn:" + leaf.Subject.CommonName
	}
	if p.Addr != nil {
		return "addr:" + p.Addr.String()
	}
	return "unknown"
}

// UnaryInterceptor logs every RPC (method, peer identity, duration, code) and turns a
// panic in a handler into an Internal error.
func UnaryInterceptor(log *slog.Logger) grpc.UnaryServerInterceptor {
	if log == nil {
		log = slog.Default()
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		start := time.Now()
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic in handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				resp, err = nil, status.Errorf(codes.Internal, "agent panic in %s: %v", info.FullMethod, r)
			}
			st := status.Convert(err)
			attrs := []any{"method", info.FullMethod, "peer", PeerIdentity(ctx),
				"duration", time.Since(start).Round(time.Microsecond), "code", st.Code().String()}
			if err != nil {
				log.Warn("rpc", append(attrs, "err", st.Message())...)
			} else {
				log.Info("rpc", attrs...)
			}
		}()
		return handler(ctx, req)
	}
}
