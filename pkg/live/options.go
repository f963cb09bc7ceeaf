package live

import (
	"log/slog"
	"time"
)

// Option configures a Hub or Subjects; each ignores what does not concern
// it.
type Option func(*options)

type options struct {
	interval  time.Duration
	logger    *slog.Logger
	health    func() (time.Time, error)
	heartbeat time.Duration
	queue     int
	replay    int
}

func newOptions(opts []Option) options {
	o := options{
		interval: DefaultInterval, logger: slog.New(slog.DiscardHandler),
		heartbeat: 15 * time.Second, queue: 64, replay: 1024,
	}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// DefaultInterval is how often, at most, a subject or a stream client gets
// an update during a burst.
const DefaultInterval = 100 * time.Millisecond

// WithInterval sets the coalescing interval (default 100 ms; 0: none).
func WithInterval(d time.Duration) Option { return func(o *options) { o.interval = d } }

// WithLogger sets the logger (default: none).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithHealth makes a Hub tell its clients, with estado events, when the
// view's stream cannot be read (health returns why and since when) and
// when it can again. Hub.Run polls it every second.
func WithHealth(health func() (time.Time, error)) Option {
	return func(o *options) { o.health = health }
}

// WithHeartbeat sets how often an idle stream gets a comment line, so that
// proxies do not close it (default 15 s).
func WithHeartbeat(d time.Duration) Option { return func(o *options) { o.heartbeat = d } }

// WithQueue sets how many events a stream client may be behind before it
// is sent the whole dashboard again (default 64).
func WithQueue(n int) Option { return func(o *options) { o.queue = n } }

// WithReplay sets how many recent updates a Hub keeps for clients that
// reconnect with Last-Event-ID (default 1024).
func WithReplay(n int) Option { return func(o *options) { o.replay = n } }
