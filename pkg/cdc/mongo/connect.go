package mongo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/x/mongo/driver"
	"go.mongodb.org/mongo-driver/x/mongo/driver/topology"

	"github.com/reportes/reportes/pkg/cdc"
)

// firstContact bounds how long the source waits for the server to answer
// before it reports that it cannot reach it. The driver's default server
// selection timeout (30s) would leave the ingestor silent that long on a
// refused port or a black-holed host; the supervisor retries with backoff
// anyway, so failing early costs nothing and shows the reason at once. A
// serverSelectionTimeoutMS in the URI wins.
const firstContact = 5 * time.Second

// Server error codes that mean the server answered and refused who we are:
// restarting with the same credentials cannot heal them.
const (
	codeUnauthorized         = 13
	codeAuthenticationFailed = 18
)

// unreachableError is the failure to get any answer from the server. Its
// message names the hosts and the reason only, never the URI, which may hold
// a password.
type unreachableError struct {
	hosts, reason string
	err           error
}

func (e *unreachableError) Error() string {
	return "cannot reach MongoDB at " + e.hosts + ": " + e.reason
}

func (e *unreachableError) Unwrap() error { return e.err }

// connect returns a client whose server answered a ping. Authentication
// failures are permanent (cdc.Permanent); no answer is an unreachableError.
func (s *Source) connect(ctx context.Context) (*mongo.Client, error) {
	opts := options.Client().SetServerSelectionTimeout(firstContact).ApplyURI(s.cfg.URI)
	hosts := strings.Join(opts.Hosts, ",")
	if hosts == "" {
		hosts = "(no host in the URI)"
	}
	client, err := mongo.Connect(ctx, opts)
	if err != nil {
		// The driver's URI errors name the part at fault, not the URI.
		return nil, fmt.Errorf("connect to MongoDB at %s: %w", hosts, err)
	}
	pctx, cancel := context.WithTimeout(ctx, firstContact)
	defer cancel()
	err = client.Ping(pctx, nil)
	if err == nil {
		return client, nil
	}
	_ = client.Disconnect(context.WithoutCancel(ctx))
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case refused(err):
		return nil, cdc.Permanent(fmt.Errorf("authenticate to MongoDB at %s: %w", hosts, err))
	}
	var sse topology.ServerSelectionError
	if errors.As(err, &sse) || errors.Is(err, context.DeadlineExceeded) {
		return nil, &unreachableError{hosts: hosts, reason: unreachableReason(err), err: err}
	}
	return nil, fmt.Errorf("ping MongoDB at %s: %w", hosts, err)
}

// unreachableReason is what the driver last saw of the servers (a refused
// connection, a DNS failure...), or the silence of a host that accepts
// connections and never answers.
func unreachableReason(err error) string {
	var sse topology.ServerSelectionError
	if errors.As(err, &sse) {
		var seen []string
		for _, srv := range sse.Desc.Servers {
			if srv.LastError != nil {
				seen = append(seen, srv.LastError.Error())
			}
		}
		if len(seen) > 0 {
			return strings.Join(seen, "; ")
		}
	}
	return fmt.Sprintf("no answer in %s", firstContact)
}

// refused reports whether the server answered and refused our credentials
// or our rights (AuthenticationFailed, Unauthorized), however deep the
// driver wrapped the answer: in a handshake it is inside a connection
// error, after a failed selection it is a server's last error.
func refused(err error) bool {
	if err == nil {
		return false
	}
	var se mongo.ServerError
	if errors.As(err, &se) && (se.HasErrorCode(codeAuthenticationFailed) || se.HasErrorCode(codeUnauthorized)) {
		return true
	}
	var de driver.Error
	if errors.As(err, &de) && (de.Code == codeAuthenticationFailed || de.Code == codeUnauthorized) {
		return true
	}
	var sse topology.ServerSelectionError
	if errors.As(err, &sse) {
		for _, srv := range sse.Desc.Servers {
			if srv.LastError != nil && refused(srv.LastError) {
				return true
			}
		}
	}
	return false
}
