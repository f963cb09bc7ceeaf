package projection

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
)

// Factory makes a projector feeding view with the given options on top of
// the caller's own (later options win). Serving calls it for the projector
// it starts with and for each rebuild.
type Factory func(view *View, opts ...Option) (*Projector, error)

// Serving holds the projector whose view is served, and is the one place
// its updates go out from. A rebuild ([Serving.Rebuild]) builds a second
// view beside it, fed by a projector of its own, and once that one caught
// up swaps it in: readers asking Serving for the view get the old one
// until the swap and the new one after, at a stream sequence at least the
// old one's; followers (WithUpdates) get the old projector's updates until
// the swap, then one update that takes them from the old view to the new
// one, then the new projector's. The old projector is stopped before the
// swap and never restarted.
type Serving struct {
	build  Factory
	out    func(Update)
	logger *slog.Logger

	mu       sync.Mutex // serialises updates going out with the swap
	cur      atomic.Pointer[served]
	ctx      context.Context // of Run, for the projectors rebuilds start; nil before
	stopping bool            // Run is ending
	wg       sync.WaitGroup  // projectors running
	failed   chan error      // the error a served projector's Run returned
	rebuild  atomic.Pointer[Rebuild]
	busy     atomic.Bool // a rebuild runs
	ids      atomic.Uint64
}

// served is one projector Serving runs.
type served struct {
	p      *Projector
	cancel context.CancelFunc
	done   chan struct{} // closed when its Run returned
	cut    uint64        // its updates up to this sequence went out already (guarded by Serving.mu)
}

// ServingOption configures a Serving.
type ServingOption func(*Serving)

// WithServingLogger sets the logger of rebuilds (default: discard).
func WithServingLogger(l *slog.Logger) ServingOption { return func(s *Serving) { s.logger = l } }

// NewServing serves view, fed by the projector build makes, and hands
// every Update of the served projector to out (nil: none), which must not
// block.
func NewServing(view *View, build Factory, out func(Update), opts ...ServingOption) (*Serving, error) {
	s := &Serving{build: build, out: out, logger: slog.New(slog.DiscardHandler), failed: make(chan error, 1)}
	for _, opt := range opts {
		opt(s)
	}
	sv, err := s.newServed(view)
	if err != nil {
		return nil, err
	}
	s.cur.Store(sv)
	return s, nil
}

// newServed makes a projector of view whose updates go out only while it
// is the one served.
func (s *Serving) newServed(view *View, opts ...Option) (*served, error) {
	sv := &served{done: make(chan struct{})}
	p, err := s.build(view, append(opts, WithUpdates(func(u Update) { s.handOn(sv, u) }))...)
	if err != nil {
		return nil, err
	}
	sv.p = p
	return sv, nil
}

// handOn passes on u, of sv's projector, if sv is served and u is news.
func (s *Serving) handOn(sv *served, u Update) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil || s.cur.Load() != sv || u.Seq <= sv.cut {
		return
	}
	s.out(u)
}

// Projector is the projector served now.
func (s *Serving) Projector() *Projector { return s.cur.Load().p }

// View is the view served now. A reader that needs several figures of one
// view asks once and reads them all from the view it got.
func (s *Serving) View() *View { return s.cur.Load().p.view }

// Run runs the served projector, and those rebuilds start, until ctx ends
// (nil) or the served one fails (its error).
func (s *Serving) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	if err := s.start(ctx, s.cur.Load()); err != nil {
		return err
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-s.failed:
	}
	s.mu.Lock()
	s.stopping = true // no rebuild starts a projector now
	s.mu.Unlock()
	cancel() // a rebuild's projector too
	s.wg.Wait()
	return err
}

// runContext is the context of Run, or an error before Run or after it
// ended.
func (s *Serving) runContext() (context.Context, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil {
		return nil, errors.New("the projector is not running")
	}
	if err := s.ctx.Err(); err != nil {
		return nil, errStopping
	}
	return s.ctx, nil
}

// start runs sv's projector until ctx ends or sv is stopped; not once Run
// is ending.
func (s *Serving) start(ctx context.Context, sv *served) error {
	ctx, sv.cancel = context.WithCancel(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		close(sv.done)
		return errStopping
	}
	s.wg.Go(func() {
		defer close(sv.done)
		err := sv.p.Run(ctx)
		if err != nil && s.cur.Load() == sv {
			select {
			case s.failed <- err:
			default:
			}
		}
	})
	return nil
}

// stop stops sv's projector and waits for its Run to return: its view no
// longer changes, and every update of it went out.
func (sv *served) stop() {
	sv.cancel()
	<-sv.done
}
