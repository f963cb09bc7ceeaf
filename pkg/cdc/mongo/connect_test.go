package mongo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"

	"github.com/reportes/reportes/internal/cdctest"
	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/cdc"
	cdcmongo "github.com/reportes/reportes/pkg/cdc/mongo"
)

// logBuffer collects a logger's output from the source's goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

const password = "s3cret-pw"

// TestUnreachableServer: with a refused port, or a host that accepts
// connections and never answers, the source fails within seconds with an
// error naming the address and the reason (never the password, never the
// oplog hint), logs no capture mode, and is left to the supervisor to retry.
func TestUnreachableServer(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0") // the kernel accepts; nobody ever answers
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = silent.Close() }()
	port, err := devstack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, addr, reason string }{
		{"refused", fmt.Sprintf("127.0.0.1:%d", port), "connection refused"},
		{"silent", silent.Addr().String(), "no answer in"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			var logs logBuffer
			h.cfg.URI = "mongodb://reportes:" + password + "@" + tt.addr + "/?authSource=admin"
			h.cfg.Mode = cdcmongo.ModeOplog
			h.opts = append(h.opts, cdcmongo.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			start := time.Now()
			h.start()
			err := h.Exited(15 * time.Second)
			took := time.Since(start)
			switch {
			case err == nil || !strings.Contains(err.Error(), "cannot reach MongoDB at "+tt.addr+": ") || !strings.Contains(err.Error(), tt.reason):
				t.Fatalf("after %s: %v; want cannot reach MongoDB at %s: ...%s...", took, err, tt.addr, tt.reason)
			case strings.Contains(err.Error(), password) || strings.Contains(logs.String(), password):
				t.Fatalf("the password leaked: %v\n%s", err, logs.String())
			case strings.Contains(err.Error(), "replica set"):
				t.Fatalf("oplog hint without an answer from the server: %v", err)
			case errors.Is(err, cdc.ErrPermanent):
				t.Fatalf("an unreachable server may come back; the error must not be permanent: %v", err)
			case strings.Contains(logs.String(), "capturing"):
				t.Fatalf("capture mode logged before the server answered:\n%s", logs.String())
			case took > 10*time.Second:
				t.Fatalf("the error came after %s", took)
			}
		})
	}
}

// TestAuthenticationFailureIsPermanent: a server that refuses the
// credentials makes the source stop for good, with the reason.
func TestAuthenticationFailureIsPermanent(t *testing.T) {
	h := newHarness(t)
	u, err := url.Parse(h.cfg.URI)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("nobody", password)
	h.cfg.URI = u.String()
	h.start()
	err = h.Exited(15 * time.Second)
	if !errors.Is(err, cdc.ErrPermanent) || !strings.Contains(err.Error(), "AuthenticationFailed") {
		t.Fatalf("got %v, want a permanent authentication failure", err)
	}
	if strings.Contains(err.Error(), password) {
		t.Fatalf("the password leaked: %v", err)
	}
}

// TestMissingOplog: a server that answers but has no local.oplog.rs gets
// the hint, instead of a snapshot followed by a tail of nothing.
func TestMissingOplog(t *testing.T) {
	port, err := devstack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	fdb, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: fmt.Sprintf("127.0.0.1:%d", port)},
		Handler:   "sqlite",
		SQLiteURL: "file:" + t.TempDir() + "/",
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = fdb.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	h := newHarness(t)
	h.cfg.URI = fdb.MongoDBURI()
	h.start()
	err = h.Exited(15 * time.Second)
	if err == nil || !strings.Contains(err.Error(), "local.oplog.rs does not exist") || errors.Is(err, cdc.ErrPermanent) {
		t.Fatalf("got %v, want a retryable error saying local.oplog.rs does not exist", err)
	}
	if evs := h.Events(); len(evs) != 0 {
		t.Fatalf("published %s without an oplog to follow", cdctest.Summary(evs))
	}
}
