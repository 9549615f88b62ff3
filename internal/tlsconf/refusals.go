package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"strings"

	"google.golang.org/grpc/credentials"
)

// LogRefusals wraps server credentials so that every refused handshake is logged (warn)
// with the peer address and the reason. gRPC drops these errors silently, so without it an
// operator whose client is refused sees nothing on the agent.
func LogRefusals(creds credentials.TransportCredentials, log *slog.Logger) credentials.TransportCredentials {
	if log == nil {
		log = slog.Default()
	}
	return &refusalLogger{TransportCredentials: creds, log: log}
}

type refusalLogger struct {
	credentials.TransportCredentials
	log *slog.Logger
}

func (c *refusalLogger) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		peer := "unknown"
		if raw != nil && raw.RemoteAddr() != nil {
			peer = raw.RemoteAddr().String()
		}
		attrs := []any{"peer", peer, "reason", err.Error()}
		if h := refusalHint(err); h != "" {
			attrs = append(attrs, "hint", h)
		}
		c.log.Warn("refused TLS handshake", attrs...)
	}
	return conn, info, err
}

func (c *refusalLogger) Clone() credentials.TransportCredentials {
	return &refusalLogger{TransportCredentials: c.TransportCredentials.Clone(), log: c.log}
}

// refusalHint says what the client's operator can do about the common refusals.
func refusalHint(err error) string {
	var rec tls.RecordHeaderError
	var unknownCA x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var ident *clientIdentityError
	switch {
	case errors.As(err, &rec):
		return "the client does not speak TLS; it needs the CA, a client certificate and key"
	case errors.As(err, &unknownCA):
		return "the client certificate is not signed by the agent's client CA"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "the client certificate has expired or is not valid yet; issue a new one"
	case errors.As(err, &ident):
		return "issue the client a certificate with an allowed identity, or allow its identity on the agent"
	case strings.Contains(err.Error(), "didn't provide a certificate"):
		// Go clients send no certificate at all when theirs is not from the CA the server asks for.
		return "the client must present a certificate signed by the agent's client CA (Go clients send none when theirs is from another CA)"
	}
	return ""
}
