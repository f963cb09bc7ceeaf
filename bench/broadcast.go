package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// broadcastArg, as the first argument, makes the bench binary the fan-out
// figure's reference and nothing else: a trivial Go SSE broadcaster, in a
// process of its own as the api is, that sends every line it reads on its
// standard input, as the data of an update event, to every client.
const broadcastArg = "serve-sse"

// broadcastHello is the reference's first event: the figure the clients
// follow, at 0.
const broadcastHello = "retry: 2000\n\nevent: dashboard\ndata: {\"metricas_globales\":{\"total_empleados\":0}}\n\n"

// broadcaster is what an SSE server without coalescing, replay or
// resynchronisation does: a queue per client, every event offered to each.
type broadcaster struct {
	mu      sync.Mutex
	clients map[chan []byte]struct{}
}

func (b *broadcaster) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ch := make(chan []byte, 64)
	b.mu.Lock()
	b.clients[ch] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.clients, ch)
		b.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	if _, err := io.WriteString(w, broadcastHello); err != nil || rc.Flush() != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case ev := <-ch:
			if _, err := w.Write(ev); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

func (b *broadcaster) send(ev []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.clients {
		select {
		case ch <- ev:
		default: // a client that fell behind misses it
		}
	}
}

// serveBroadcast prints the address it listens on, then broadcasts each
// line of its standard input until it ends.
func serveBroadcast() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	b := &broadcaster{clients: map[chan []byte]struct{}{}}
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Println(ln.Addr().String())
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for id := 1; in.Scan(); id++ {
		ev := make([]byte, 0, len(in.Bytes())+48)
		ev = append(ev, "id: "...)
		ev = strconv.AppendInt(ev, int64(id), 10)
		ev = append(ev, "\nevent: update\ndata: "...)
		ev = append(ev, in.Bytes()...)
		ev = append(ev, "\n\n"...)
		b.send(ev)
	}
	return in.Err()
}

// broadcastProc is the reference broadcaster, run by startBroadcaster.
type broadcastProc struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	addr string
}

func startBroadcaster() (*broadcastProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, broadcastArg) //nolint:gosec,noctx // this very binary
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sse broadcaster process: %w", err)
	}
	p := &broadcastProc{cmd: cmd, in: in}
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		p.stop()
		return nil, errors.Join(errors.New("sse broadcaster process did not start"), err)
	}
	p.addr = addr[:len(addr)-1]
	return p, nil
}

// trigger sends data (one line of JSON) as an update event to every client.
func (p *broadcastProc) trigger(data []byte) error {
	_, err := p.in.Write(append(data, '\n'))
	return err
}

func (p *broadcastProc) stop() {
	_ = p.in.Close()
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}
