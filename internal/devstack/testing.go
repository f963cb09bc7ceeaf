package devstack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Stack is a set of running local services.
type Stack struct {
	Dir      string
	Postgres *Postgres
	NATS     *NATS
	Ferret   *Ferret
}

var shared struct {
	once  sync.Once
	stack *Stack
	err   error
}

// Shared returns the services of this test binary, starting them on first
// use; TestMain must call Main so they are stopped at the end.
func Shared(t testing.TB) *Stack {
	t.Helper()
	shared.once.Do(func() {
		shared.stack, shared.err = start()
	})
	if shared.err != nil {
		t.Fatalf("start local services: %v", shared.err)
	}
	return shared.stack
}

func start() (*Stack, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "reportes-test-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil { //nolint:gosec // the postgres user must traverse it
		return nil, err
	}
	s := &Stack{Dir: dir}
	if s.Postgres, err = StartPostgres(ctx, filepath.Join(dir, "postgres"), 0); err != nil {
		return nil, err
	}
	if s.NATS, err = StartNATS(filepath.Join(dir, "nats"), 0); err != nil {
		s.Stop()
		return nil, err
	}
	if s.Ferret, err = StartFerret(ctx, filepath.Join(dir, "ferretdb"), 0); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Stop stops every service and removes their data.
func (s *Stack) Stop() {
	if s.Ferret != nil {
		s.Ferret.Stop()
	}
	if s.NATS != nil && s.NATS.Server != nil {
		s.NATS.Stop()
	}
	if s.Postgres != nil {
		_ = s.Postgres.Stop()
	}
	_ = os.RemoveAll(s.Dir)
}

// Main runs the tests of a package and stops the shared services afterwards.
func Main(m *testing.M) {
	code := m.Run()
	if shared.stack != nil {
		shared.stack.Stop()
	}
	os.Exit(code)
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// Name returns an identifier unique to the test, usable as a database, slot,
// stream or bucket name.
func Name(t testing.TB) string {
	n := nonIdent.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(n) > 40 {
		n = n[:40]
	}
	return fmt.Sprintf("%s_%d", n, time.Now().UnixNano()%1_000_000_000)
}

// Database creates a fresh PostgreSQL database for the test and returns its URL.
func (s *Stack) Database(t testing.TB) string {
	t.Helper()
	name := Name(t)
	if err := s.Postgres.CreateDatabase(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	return s.Postgres.URL(name)
}

// Eventually polls cond every 10ms until it holds or timeout passes, then
// fails the test with the last message cond returned.
func Eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met in %s: %s", timeout, msg)
		}
		<-tick.C
	}
}
