package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"
)

// sighting is a client receiving a figure larger than any before.
type sighting struct {
	at    time.Duration // since the crowd's clock started
	total int
}

// sseClient is one light event-stream reader: a raw TCP connection, the
// response read through bufio, each data line searched for the figure with
// bytes.Index, nothing decoded: ten thousand of them must leave the cores
// to the servers they measure.
type sseClient struct {
	seen  []sighting
	keep  bool     // keep the update events' data lines (one client does)
	lines [][]byte // those lines, without the "data: " prefix
}

// sseCrowd is many sseClients of one server, all following the figure
// after key (`"total_empleados":`) in the events' data.
type sseCrowd struct {
	addr, path string
	key        []byte
	t0         time.Time
	clients    []*sseClient
	target     atomic.Int64 // a client that sees this figure counts in done
	connected  atomic.Int64 // clients that received their first event
	failed     atomic.Int64
	done       atomic.Int64
	firstErr   atomic.Pointer[error]
	wg         sync.WaitGroup

	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

// connectCrowd opens n event streams of path on addr, at most 128 being
// set up at once, and returns when each has received its first event or
// failed, or after timeout (the clients still connecting then go on).
func connectCrowd(addr, path, key string, n int, timeout time.Duration) *sseCrowd {
	c := &sseCrowd{addr: addr, path: path, key: []byte(key), t0: time.Now()}
	c.target.Store(-1)
	sem := make(chan struct{}, 128)
	deadline := time.Now().Add(timeout)
	for i := range n {
		if time.Now().After(deadline) {
			break
		}
		cl := &sseClient{keep: i == 0}
		c.clients = append(c.clients, cl)
		sem <- struct{}{}
		c.wg.Add(1)
		go cl.run(c, sem)
	}
	for int(c.connected.Load()+c.failed.Load()) < len(c.clients) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	return c
}

func (c *sseCrowd) fail(err error) {
	c.failed.Add(1)
	c.firstErr.CompareAndSwap(nil, &err)
}

// err is the first error a client met, if any.
func (c *sseCrowd) err() error {
	if p := c.firstErr.Load(); p != nil {
		return *p
	}
	return nil
}

// waitDone waits until every connected client has seen target, or timeout.
func (c *sseCrowd) waitDone(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for c.done.Load() < c.connected.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// close disconnects every client and waits for their goroutines: their
// sightings may be read after it.
func (c *sseCrowd) close() {
	c.mu.Lock()
	c.closed = true
	for _, conn := range c.conns {
		_ = conn.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// track keeps conn for close, or closes it when the crowd already is.
func (c *sseCrowd) track(conn net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		_ = conn.Close()
		return false
	}
	c.conns = append(c.conns, conn)
	return true
}

var (
	dataPrefix  = []byte("data: ")
	updateEvent = []byte("event: update")
)

func (cl *sseClient) run(c *sseCrowd, sem chan struct{}) {
	defer c.wg.Done()
	released := false
	release := func() {
		if !released {
			released = true
			<-sem
		}
	}
	defer release()
	conn, err := net.DialTimeout("tcp", c.addr, 10*time.Second)
	if err != nil {
		c.fail(err)
		return
	}
	if !c.track(conn) {
		return
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // until the first event
	if _, err := io.WriteString(conn, "GET "+c.path+" HTTP/1.1\r\nHost: "+c.addr+"\r\nAccept: text/event-stream\r\n\r\n"); err != nil {
		c.fail(err)
		return
	}
	body, err := eventBody(bufio.NewReaderSize(conn, 2048))
	if err != nil {
		c.fail(err)
		return
	}
	connected, update, midLine := false, false, false
	for {
		line, err := body.ReadSlice('\n')
		at := time.Since(c.t0)
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if !connected {
				c.fail(err)
			}
			return
		}
		// A line longer than the buffer (a whole dashboard) is read from
		// its first part: the totals come first in it.
		start := !midLine
		midLine = errors.Is(err, bufio.ErrBufferFull)
		switch {
		case !start:
		case bytes.HasPrefix(line, updateEvent):
			update = true
		case bytes.HasPrefix(line, dataPrefix):
			if n, ok := figureAfter(line, c.key); ok && (len(cl.seen) == 0 || n > cl.seen[len(cl.seen)-1].total) {
				cl.seen = append(cl.seen, sighting{at: at, total: n})
				if t := c.target.Load(); t >= 0 && int64(n) >= t && (len(cl.seen) == 1 || int64(cl.seen[len(cl.seen)-2].total) < t) {
					c.done.Add(1)
				}
			}
			if cl.keep && update && !midLine {
				cl.lines = append(cl.lines, bytes.Clone(bytes.TrimSuffix(line[len(dataPrefix):], []byte("\n"))))
			}
			update = false
			if !connected {
				connected = true
				_ = conn.SetReadDeadline(time.Time{})
				c.connected.Add(1)
				release()
			}
		}
	}
}

// eventBody reads the response's status line and header and returns its
// body, de-chunked when it is chunked.
func eventBody(br *bufio.Reader) (*bufio.Reader, error) {
	status, err := br.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(status, []byte(" 200 ")) {
		return nil, fmt.Errorf("event stream answered %q", bytes.TrimSpace(status))
	}
	chunked := false
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("Transfer-Encoding")) &&
			bytes.Contains(bytes.ToLower(v), []byte("chunked")) {
			chunked = true
		}
	}
	if !chunked {
		return br, nil
	}
	return bufio.NewReaderSize(httputil.NewChunkedReader(br), 4096), nil
}

// figureAfter reads the unsigned integer that follows key in line.
func figureAfter(line, key []byte) (int, bool) {
	i := bytes.Index(line, key)
	if i < 0 {
		return 0, false
	}
	n, digits := 0, 0
	for _, b := range line[i+len(key):] {
		if b < '0' || b > '9' {
			break
		}
		n = n*10 + int(b-'0')
		digits++
	}
	return n, digits > 0
}

// deliveries is how many events moved a client's figure past base.
func (c *sseCrowd) deliveries(base int) int {
	n := 0
	for _, cl := range c.clients {
		for _, s := range cl.seen {
			if s.total > base {
				n++
			}
		}
	}
	return max(n, 1)
}

// latencies returns, for every client and every change k in 1..len(at)-1,
// the time from at[k] until the client saw base+k or more, and how many
// such sightings never came. newest returns, for every sighting of a
// figure base+k in (base, base+len(at)), the time from at[k]: the change
// the event carried last.
func (c *sseCrowd) latencies(base int, at []time.Duration) (all, newest []time.Duration, missing int) {
	n := len(at) - 1
	for _, cl := range c.clients {
		if len(cl.seen) == 0 {
			continue
		}
		j := 0
		for k := 1; k <= n; k++ {
			for j < len(cl.seen) && cl.seen[j].total < base+k {
				j++
			}
			if j == len(cl.seen) {
				missing += n - k + 1
				break
			}
			all = append(all, cl.seen[j].at-at[k])
		}
		for _, s := range cl.seen {
			if k := s.total - base; k >= 1 && k <= n {
				newest = append(newest, s.at-at[k])
			}
		}
	}
	return all, newest, missing
}
