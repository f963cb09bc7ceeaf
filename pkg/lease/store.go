package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrHeld is wrapped by the error Acquire returns when another holder holds
// the name; errors.As with a *HeldError tells who.
var ErrHeld = errors.New("held by another holder")

// ErrLost is wrapped by the errors that tell a lease is no longer held: its
// key was rewritten by another holder, deleted, or expired, or the lease was
// released.
var ErrLost = errors.New("lease lost")

// ErrBucketTTL is wrapped by the error Open returns when the bucket exists
// with a TTL other than the one asked for.
var ErrBucketTTL = errors.New("lease bucket has another TTL")

// HeldError is the error Acquire returns when Holder holds Name.
type HeldError struct {
	Name   string
	Holder string
}

// Error implements error.
func (e *HeldError) Error() string {
	return fmt.Sprintf("lease %s %s %s", e.Name, ErrHeld, e.Holder)
}

// Unwrap makes errors.Is(err, ErrHeld) hold.
func (e *HeldError) Unwrap() error { return ErrHeld }

// MinTTL is the shortest TTL Open accepts.
const MinTTL = time.Second

// Store is a lease bucket: a JetStream key-value bucket with a TTL.
type Store struct {
	kv     jetstream.KeyValue
	ttl    time.Duration
	poll   time.Duration // how often standbys try names and Shares rebalance
	logger *slog.Logger
}

// Option configures Open.
type Option func(*storeOptions)

type storeOptions struct {
	replicas int
	logger   *slog.Logger
}

// WithReplicas sets the replicas of the bucket when Open creates it
// (default 1). An existing bucket keeps its own.
func WithReplicas(n int) Option { return func(o *storeOptions) { o.replicas = n } }

// WithLogger sets the logger of the store and of the Keepers and Shares
// using it (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *storeOptions) { o.logger = l } }

// Open opens the lease bucket, creating it when missing with the TTL ttl,
// history 1, file storage and limit markers (so that watchers see keys
// expire; on a server without them, the bucket is created without, and
// standbys poll every TTL/6 instead of TTL/4). An
// existing bucket is used as it is (replicas, placement and storage an
// operator set stay), except that its TTL must be ttl: every timing rule of
// the package derives from it, and a holder that believed in a longer TTL
// than the bucket's would keep working after its key expired. Open then
// fails with an error wrapping ErrBucketTTL. ttl must be at least MinTTL.
func Open(ctx context.Context, js jetstream.JetStream, bucket string, ttl time.Duration, opts ...Option) (*Store, error) {
	if ttl < MinTTL {
		return nil, fmt.Errorf("lease bucket %s: TTL %s is shorter than %s", bucket, ttl, MinTTL)
	}
	o := storeOptions{replicas: 1, logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	kv, err := openOrCreate(ctx, js, jetstream.KeyValueConfig{
		Bucket:         bucket,
		Description:    "reportes leases",
		History:        1,
		TTL:            ttl,
		Storage:        jetstream.FileStorage,
		Replicas:       o.replicas,
		LimitMarkerTTL: ttl,
	})
	if err != nil {
		return nil, fmt.Errorf("open lease bucket %s: %w", bucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("open lease bucket %s: %w", bucket, err)
	}
	if st.TTL() != ttl {
		return nil, fmt.Errorf("open lease bucket %s: %w: %s, want %s (delete the bucket or use its TTL)",
			bucket, ErrBucketTTL, st.TTL(), ttl)
	}
	poll := ttl / pollEvery
	if st.LimitMarkerTTL() == 0 {
		poll = ttl / pollEveryUnwatched
		o.logger.Info("lease bucket has no limit markers: expired leases are seen by polling only",
			"bucket", bucket, "poll", poll)
	}
	return &Store{kv: kv, ttl: ttl, poll: poll, logger: o.logger}, nil
}

func openOrCreate(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return kv, err
	}
	kv, err = js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported) {
		cfg.LimitMarkerTTL = 0
		kv, err = js.CreateKeyValue(ctx, cfg)
	}
	if errors.Is(err, jetstream.ErrBucketExists) {
		return js.KeyValue(ctx, cfg.Bucket)
	}
	return kv, err
}

// TTL returns the bucket's TTL.
func (s *Store) TTL() time.Duration { return s.ttl }

// Acquire takes the lease on name for holder. It succeeds when the name's
// key is absent, deleted or expired, and when it already holds holder (a
// restarted holder takes over its own lease at once). When another holder
// holds it, the error is a *HeldError wrapping ErrHeld.
func (s *Store) Acquire(ctx context.Context, name, holder string) (*Lease, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if holder == "" {
		return nil, fmt.Errorf("acquire lease %s: empty holder", name)
	}
	for range 3 {
		l, err := s.tryAcquire(ctx, name, holder)
		if !errors.Is(err, errChanged) {
			return l, err
		}
	}
	return nil, fmt.Errorf("acquire lease %s: %w", name, errChanged)
}

// errChanged tells that the key changed between two steps of an attempt.
var errChanged = errors.New("the key kept changing under the attempt")

func (s *Store) tryAcquire(ctx context.Context, name, holder string) (*Lease, error) {
	sent := time.Now()
	rev, err := s.kv.Create(ctx, name, []byte(holder))
	if err == nil {
		return s.newLease(name, holder, rev, sent), nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	e, err := s.kv.Get(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return nil, errChanged
	case err != nil:
		return nil, fmt.Errorf("acquire lease %s: %w", name, err)
	case string(e.Value()) != holder:
		return nil, &HeldError{Name: name, Holder: string(e.Value())}
	}
	sent = time.Now()
	rev, err = s.kv.Update(ctx, name, []byte(holder), e.Revision())
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return nil, errChanged
	}
	if err != nil {
		return nil, fmt.Errorf("take over own lease %s: %w", name, err)
	}
	s.logger.Info("took over own lease", "lease", name, "holder", holder, "revision", rev)
	return s.newLease(name, holder, rev, sent), nil
}

// Holder returns who holds name, or "" when no one does.
func (s *Store) Holder(ctx context.Context, name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	e, err := s.kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read lease %s: %w", name, err)
	}
	return string(e.Value()), nil
}

// holders returns the holder of every held name matching filter (a key
// pattern with NATS wildcards).
func (s *Store) holders(ctx context.Context, filter string) (map[string]string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("list leases %s: %w", filter, err)
	}
	defer func() { _ = w.Stop() }()
	out := make(map[string]string)
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("list leases %s: watcher closed", filter)
			}
			if e == nil {
				return out, nil
			}
			out[e.Key()] = string(e.Value())
		case <-ctx.Done():
			return nil, fmt.Errorf("list leases %s: %w", filter, ctx.Err())
		}
	}
}

var validName = regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)

// ValidName reports whether s can be a lease name, a Share prefix or a
// Share member: a NATS key-value key made of letters, digits and - _ = / .,
// without a leading or trailing dot or two dots in a row.
func ValidName(s string) bool {
	return validName.MatchString(s) && !strings.HasPrefix(s, ".") && !strings.HasSuffix(s, ".") &&
		!strings.Contains(s, "..")
}

// Sanitize maps s to a valid name, replacing every character a name may not
// hold with '_' and trimming dots: "host:4242" becomes "host_4242". Distinct
// strings may map to the same name.
func Sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !validName.Match([]byte{c}) {
			b[i] = '_'
		}
	}
	out := strings.Trim(string(b), ".")
	for strings.Contains(out, "..") {
		out = strings.ReplaceAll(out, "..", ".")
	}
	if out == "" {
		return "_"
	}
	return out
}

func checkName(name string) error {
	if !ValidName(name) {
		return fmt.Errorf("lease name %q is not a valid key-value key", name)
	}
	return nil
}

// ProcessName names this process as a holder or Share member: its host
// name and process id, sanitized. Two live processes never share it.
func ProcessName() string {
	host, _ := os.Hostname()
	return Sanitize(fmt.Sprintf("%s-%d", host, os.Getpid()))
}
