package live

import (
	"context"
	"sync"
	"time"

	"github.com/reportes/reportes/pkg/projection"
)

// Coalescer merges the view's updates and hands them on at most once per
// interval: a change after a quiet interval goes out at once, a burst goes
// out as one update per interval with the latest line of each seller, and
// the last value is always sent. Add never blocks on the sinks.
type Coalescer struct {
	interval time.Duration
	sinks    []func(projection.Update)

	mu      sync.Mutex
	pending projection.Update
	index   map[string]int // seller code -> position in pending.Sellers
	full    bool           // pending holds something
	last    time.Time      // when the last update went out
	wake    chan struct{}
}

// NewCoalescer sends the merged updates to every sink, in order, from the
// goroutine of Run. An interval of 0 sends every update as it comes.
func NewCoalescer(interval time.Duration, sinks ...func(projection.Update)) *Coalescer {
	return &Coalescer{interval: interval, sinks: sinks, index: map[string]int{}, wake: make(chan struct{}, 1)}
}

// Add merges u, which follows every update added before it.
func (c *Coalescer) Add(u projection.Update) {
	c.mu.Lock()
	c.merge(u)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Coalescer) merge(u projection.Update) {
	p := &c.pending
	if !c.full {
		p.From, p.Seq, p.CommitTime, p.Totals = u.From, u.Seq, u.CommitTime, u.Totals
		c.full = true
	}
	p.From, p.Seq = min(p.From, u.From), max(p.Seq, u.Seq)
	if u.CommitTime.After(p.CommitTime) {
		p.CommitTime = u.CommitTime
	}
	if u.Totals != nil && (p.Totals == nil || u.Totals.Seq >= p.Totals.Seq) {
		p.Totals = u.Totals
	}
	for _, s := range u.Sellers {
		if i, ok := c.index[s.Empleado]; ok {
			if s.Seq >= p.Sellers[i].Seq {
				p.Sellers[i] = s
			}
			continue
		}
		c.index[s.Empleado] = len(p.Sellers)
		p.Sellers = append(p.Sellers, s)
	}
}

// take returns the merged update and empties the coalescer.
func (c *Coalescer) take() (projection.Update, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.full {
		return projection.Update{}, false
	}
	u := c.pending
	c.pending, c.full = projection.Update{}, false
	clear(c.index)
	c.last = time.Now()
	return u, true
}

// due is how long to wait before the pending update may go out.
func (c *Coalescer) due() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.interval - time.Since(c.last)
}

// Run sends the updates until ctx ends, then sends what is pending.
func (c *Coalescer) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	<-timer.C
	for {
		select {
		case <-ctx.Done():
			c.flush()
			return nil
		case <-c.wake:
		}
		if d := c.due(); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				timer.Stop()
				c.flush()
				return nil
			case <-timer.C:
			}
		}
		c.flush()
	}
}

func (c *Coalescer) flush() {
	u, ok := c.take()
	if !ok {
		return
	}
	for _, sink := range c.sinks {
		sink(u)
	}
}
