package live

import (
	"bytes"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/reportes/reportes/pkg/projection"
)

// writeTimeout bounds one write to a client: one that reads nothing for
// that long (half of it at least) is disconnected.
const writeTimeout = 10 * time.Second

var (
	retryLine = []byte("retry: 2000\n\n")
	pingLine  = []byte(": ping\n\n")
	eventEnd  = []byte("\n\n")
)

// client is one connected event stream.
type client struct {
	ch     chan *event
	resync atomic.Bool
	wake   chan struct{} // signalled when the queue overflowed
}

// offer queues ev, or marks the client for a resync when its queue is
// full: it is then sent the whole dashboard instead of what it missed.
func (c *client) offer(ev *event) {
	select {
	case c.ch <- ev:
	default:
		if !c.resync.Swap(true) {
			metricSSEResyncs.Inc()
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}
	}
}

// join registers c and returns the recent updates after last when they
// follow on from it without a gap (nil, false otherwise), and the estado
// event to send, while the stream cannot be read.
func (h *Hub) join(c *client, last uint64, resume bool) ([]*event, bool, *event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clients[c] = struct{}{}
	metricSSEClients.Set(float64(len(h.clients)))
	var estado *event
	if h.stale {
		estado = h.estado
	}
	if !resume || len(h.recent) == 0 || h.recent[0].from > last {
		return nil, false, estado
	}
	var replay []*event
	for i := range h.recent {
		if h.recent[i].seq > last {
			replay = append(replay, &h.recent[i])
		}
	}
	return replay, true, estado
}

func (h *Hub) leave(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.clients, c)
	metricSSEClients.Set(float64(len(h.clients)))
}

// ServeHTTP streams the dashboard as Server-Sent Events: the whole
// dashboard first (or, for a client reconnecting with Last-Event-ID, the
// updates it missed when they are still kept), then one update event per
// coalesced change, each with the view's sequence as its id.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	last, resume := lastEventID(r)
	c := &client{ch: make(chan *event, max(h.opts.queue, 1)), wake: make(chan struct{}, 1)}
	replay, covered, estado := h.join(c, last, resume)
	defer h.leave(c)

	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	s := &sender{w: w, rc: http.NewResponseController(w), after: last}
	s.write(retryLine)
	if covered {
		for _, ev := range replay {
			s.add(ev)
		}
	} else {
		s.dashboard(h.dashboard())
	}
	if estado != nil {
		s.add(estado)
	}
	if s.flush() != nil {
		return
	}
	h.stream(r, c, s)
}

func (h *Hub) stream(r *http.Request, c *client, s *sender) {
	beat := time.NewTicker(h.opts.heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev := <-c.ch:
			h.take(c, s, ev)
			for more := true; more; {
				select {
				case ev := <-c.ch:
					h.take(c, s, ev)
				default:
					more = false
				}
			}
		case <-c.wake:
			h.resync(c, s)
		case <-beat.C:
			s.write(pingLine)
		}
		if s.flush() != nil {
			return
		}
	}
}

// take writes ev, unless the client's queue overflowed since: an event
// after the one it dropped must not reach it before the whole dashboard,
// or a client resuming from its id would never get what was dropped.
func (h *Hub) take(c *client, s *sender, ev *event) {
	if c.resync.Load() {
		h.resync(c, s)
		return
	}
	s.add(ev)
}

// resync sends the whole dashboard instead of what the client's queue
// holds, then the connection state, which the queue may have dropped too.
func (h *Hub) resync(c *client, s *sender) {
	c.resync.Store(false)
	for len(c.ch) > 0 {
		<-c.ch
	}
	select {
	case <-c.wake:
	default:
	}
	s.dashboard(h.dashboard())
	if ev := h.currentEstado(); ev != nil {
		s.write(ev.wire)
	}
}

// sender writes one client's events, skipping updates its state already
// holds. It writes them straight into the response, whose buffer net/http
// holds anyway: a buffer of its own would keep, for every client, room for
// the largest thing it was ever sent (the whole dashboard).
type sender struct {
	w        http.ResponseWriter
	rc       *http.ResponseController
	after    uint64    // the sequence of the client's state
	deadline time.Time // the connection's write deadline
	pending  bool      // written since the last flush
	err      error     // the first write that failed
}

func (s *sender) write(b []byte) {
	if s.err != nil {
		return
	}
	s.pending = true
	s.arm() // at every write: a client that reads slowly but reads is not cut off
	_, s.err = s.w.Write(b)
}

// arm moves the connection's write deadline writeTimeout ahead once less
// than half of it is left: setting it for every flush was a tenth of the
// API's CPU with 10,000 clients.
func (s *sender) arm() {
	now := time.Now()
	if s.deadline.Sub(now) >= writeTimeout/2 {
		return
	}
	s.deadline = now.Add(writeTimeout)
	_ = s.rc.SetWriteDeadline(s.deadline)
}

func (s *sender) add(ev *event) {
	if ev.seq != 0 && ev.seq <= s.after {
		return
	}
	s.after = max(s.after, ev.seq)
	s.write(ev.wire)
}

// dashboard sends the whole dashboard, which replaces the client's state.
func (s *sender) dashboard(body []byte) {
	seq := projection.DashboardSeq(body)
	s.write(encodeHead(seq, "dashboard"))
	s.write(bytes.TrimRight(body, "\n"))
	s.write(eventEnd)
	s.after = seq
}

func (s *sender) flush() error {
	if !s.pending {
		return s.err
	}
	s.pending = false
	if s.err == nil {
		s.err = s.rc.Flush()
	}
	return s.err
}

// lastEventID reads the Last-Event-ID header (or the lastEventId query
// parameter, for clients that cannot set headers).
func lastEventID(r *http.Request) (uint64, bool) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("lastEventId")
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil
}
