package live

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/projection"
)

// fakeView holds a dashboard the way the view renders it.
type fakeView struct {
	mu      sync.Mutex
	seq     uint64
	sellers map[string]int64
}

func (v *fakeView) apply(u projection.Update) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.seq = u.Seq
	for _, s := range u.Sellers {
		v.sellers[s.Empleado] = s.PedidosRealizados
	}
}

func (v *fakeView) JSON() []byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	d := projection.Dashboard{Frescura: projection.Freshness{Secuencia: v.seq}, DetallePorVendedor: []projection.Seller{}}
	for code, n := range v.sellers {
		d.DetallePorVendedor = append(d.DetallePorVendedor, projection.Seller{Empleado: code, PedidosRealizados: n})
	}
	b, _ := json.Marshal(d)
	return b
}

// sse is one event as a client reads it.
type sse struct {
	id, name, data string
}

// subscribe connects to the hub and returns its events.
func subscribe(t *testing.T, url string, lastID string) (<-chan sse, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, ct)
	}
	out := make(chan sse, 1<<16)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var ev sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					out <- ev
				}
				ev = sse{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.name = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
	}()
	return out, cancel
}

func next(t *testing.T, events <-chan sse) sse {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event in 10s")
	}
	return sse{}
}

func startHub(t *testing.T, opts ...Option) (*Hub, *fakeView, string) {
	t.Helper()
	v := &fakeView{sellers: map[string]int64{"A": 0}}
	h := NewHub(v.JSON, opts...)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, v, srv.URL
}

func (v *fakeView) change(h *Hub, seq uint64, code string, n int64) {
	u := projection.Update{From: seq - 1, Seq: seq, Sellers: []projection.SellerUpdate{seller(code, n, seq)}}
	v.apply(u)
	h.Publish(u)
}

// TestHubStreams: the first event is the whole dashboard with the view's
// sequence as its id, then one update per change.
func TestHubStreams(t *testing.T) {
	h, v, url := startHub(t)
	v.change(h, 5, "A", 1)
	events, stop := subscribe(t, url, "")
	defer stop()
	if ev := next(t, events); ev.name != "dashboard" || ev.id != "5" || !strings.Contains(ev.data, `"secuencia":5`) {
		t.Fatalf("first event %+v, want the dashboard at 5", ev)
	}
	v.change(h, 6, "A", 2)
	ev := next(t, events)
	var u UpdateEvent
	if err := json.Unmarshal([]byte(ev.data), &u); err != nil || ev.name != "update" || ev.id != "6" {
		t.Fatalf("event %+v (%v), want the update at 6", ev, err)
	}
	if u.Secuencia != 6 || len(u.Vendedores) != 1 || u.Vendedores[0].PedidosRealizados != 2 {
		t.Errorf("update %+v, want A at 2", u)
	}
}

// TestHubResumes: a client reconnecting with Last-Event-ID gets exactly
// the updates it missed; one whose id the hub no longer covers gets the
// dashboard.
func TestHubResumes(t *testing.T) {
	h, v, url := startHub(t, WithReplay(4))
	for seq := uint64(1); seq <= 3; seq++ {
		v.change(h, seq, "A", int64(seq))
	}
	for seq := uint64(4); seq <= 6; seq++ {
		v.change(h, seq, "B", int64(seq))
	}
	events, stop := subscribe(t, url, "4")
	defer stop()
	for _, want := range []string{"5", "6"} {
		if ev := next(t, events); ev.name != "update" || ev.id != want {
			t.Fatalf("event %+v, want the update %s", ev, want)
		}
	}
	for seq := uint64(7); seq <= 9; seq++ { // the hub keeps 4 to 8 updates
		v.change(h, seq, "B", int64(seq))
	}
	old, stop2 := subscribe(t, url, "1")
	defer stop2()
	if ev := next(t, old); ev.name != "dashboard" || ev.id != "9" {
		t.Fatalf("event %+v, want the dashboard at 9: updates after 1 are gone", ev)
	}
}

// TestHubSlowClient: a client that stops reading is sent the whole
// dashboard again once it reads, never a stream with a gap, and Publish
// never waits for it.
func TestHubSlowClient(t *testing.T) {
	h, v, url := startHub(t, WithQueue(4))
	v.mu.Lock()
	for i := range 2000 { // a dashboard of ~70 KB: the socket buffers fill fast
		v.sellers[fmt.Sprintf("PAD-%04d-%s", i, strings.Repeat("x", 10))] = 1
	}
	v.mu.Unlock()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	for seq := uint64(1); seq <= 3000; seq++ {
		v.change(h, seq, "A", int64(seq))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("publishing 3000 updates took %s with a client not reading", d)
	}
	// Now read: the events must end with A at 3000, through a resync.
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<22)
	resynced, a := false, int64(-1)
	var name string
	deadline := time.AfterFunc(20*time.Second, func() { resp.Body.Close() })
	defer deadline.Stop()
	for a != 3000 && sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = line[7:]
		case strings.HasPrefix(line, "data: ") && name == "dashboard":
			var d projection.Dashboard
			_ = json.Unmarshal([]byte(line[6:]), &d)
			for _, s := range d.DetallePorVendedor {
				if s.Empleado == "A" {
					a = s.PedidosRealizados
				}
			}
			resynced = resynced || d.Frescura.Secuencia > 1
		case strings.HasPrefix(line, "data: ") && name == "update":
			var u UpdateEvent
			_ = json.Unmarshal([]byte(line[6:]), &u)
			a = u.Vendedores[0].PedidosRealizados
		}
	}
	if !resynced || a != 3000 {
		t.Errorf("resynced %v, A at %d: want a resync and A at 3000", resynced, a)
	}
}

// TestHubNoLeaks: clients connecting and disconnecting in a loop leave no
// goroutine and no registration behind.
func TestHubNoLeaks(t *testing.T) {
	h, v, url := startHub(t, WithHeartbeat(time.Millisecond))
	base := runtime.NumGoroutine()
	var stopped atomic.Bool
	go func() { // updates keep coming meanwhile
		for seq := uint64(1); !stopped.Load(); seq++ {
			v.change(h, seq, "A", int64(seq))
			time.Sleep(time.Millisecond)
		}
	}()
	tr := &http.Transport{MaxIdleConnsPerHost: 100}
	client := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	work := make(chan int)
	for range 50 {
		wg.Go(func() {
			for range work {
				resp, err := client.Get(url)
				if err != nil {
					t.Error(err)
					continue
				}
				buf := make([]byte, 64)
				_, _ = resp.Body.Read(buf)
				resp.Body.Close()
			}
		})
	}
	for i := range 10000 {
		work <- i
	}
	close(work)
	wg.Wait()
	stopped.Store(true)
	tr.CloseIdleConnections()
	devstack.Eventually(t, 20*time.Second, func() (bool, string) {
		n := runtime.NumGoroutine()
		return h.Clients() == 0 && n <= base+5, "clients " + strconv.Itoa(h.Clients()) + ", goroutines " + strconv.Itoa(n) + " (" + strconv.Itoa(base) + " before)"
	})
}
