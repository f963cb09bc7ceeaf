package live

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/reportes/reportes/pkg/projection"
)

// event is one Server-Sent Event, encoded once for every client.
type event struct {
	from, seq uint64 // an update covers (from, seq]; 0, 0 for estado events
	wire      []byte
}

// Hub fans the view's updates out to Server-Sent Events clients. Each
// client has a bounded queue: one that falls behind is sent the whole
// dashboard again, never left with a silent gap, and never slows the
// others or the view. The last updates are kept so that a client that
// reconnects with Last-Event-ID gets what it missed.
type Hub struct {
	dashboard func() []byte
	opts      options
	coalesce  *Coalescer

	mu      sync.Mutex
	clients map[*client]struct{}
	recent  []event // the last updates, oldest first
	estado  *event  // the last estado sent, nil before the first
	stale   bool    // it says the stream cannot be read
}

// NewHub serves dashboard (the JSON of GET /reportes/dashboard, whose
// frescura.secuencia is the view's sequence) and the updates given to Add.
func NewHub(dashboard func() []byte, opts ...Option) *Hub {
	h := &Hub{dashboard: dashboard, opts: newOptions(opts), clients: map[*client]struct{}{}}
	h.coalesce = NewCoalescer(h.opts.interval, h.Publish)
	return h
}

// Add hands the hub an update of the view, to be coalesced and sent.
func (h *Hub) Add(u projection.Update) { h.coalesce.Add(u) }

// UpdateEvent is the data of an update event: the lines of the sellers
// that changed (EsEmpleado false: not, or no longer, in the detail) and
// the totals when they moved.
type UpdateEvent struct {
	Secuencia        uint64                    `json:"secuencia"`
	UltimoCambio     *time.Time                `json:"ultimo_cambio"`
	MetricasGlobales *projection.Global        `json:"metricas_globales,omitempty"`
	Vendedores       []projection.SellerUpdate `json:"vendedores"`
}

// EstadoEvent is the data of an estado event.
type EstadoEvent struct {
	Conectado        bool       `json:"conectado"`
	Error            string     `json:"error,omitempty"`
	SinConexionDesde *time.Time `json:"sin_conexion_desde,omitempty"`
}

// Publish sends u to every client now, bypassing the coalescing. It never
// blocks on a client.
func (h *Hub) Publish(u projection.Update) {
	data := UpdateEvent{Secuencia: u.Seq, UltimoCambio: commitTime(u), Vendedores: u.Sellers}
	if data.Vendedores == nil {
		data.Vendedores = []projection.SellerUpdate{}
	}
	if u.Totals != nil {
		data.MetricasGlobales = &u.Totals.Global
	}
	body, _ := json.Marshal(data)
	ev := event{from: u.From, seq: u.Seq, wire: encode(u.Seq, "update", body)}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recent = append(h.recent, ev)
	if keep := max(h.opts.replay, 1); len(h.recent) >= 2*keep { // trim now and then, not at every update
		h.recent = append(make([]event, 0, 2*keep), h.recent[len(h.recent)-keep:]...)
	}
	h.broadcast(&h.recent[len(h.recent)-1])
}

func (h *Hub) broadcast(ev *event) {
	for c := range h.clients {
		c.offer(ev)
	}
}

// Run sends the coalesced updates and follows the view's health until
// ctx ends.
func (h *Hub) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return h.coalesce.Run(ctx) })
	if h.opts.health != nil {
		g.Go(func() error { h.watch(ctx); return nil })
	}
	return g.Wait()
}

// watch tells clients when the stream cannot be read and when it can
// again, until ctx ends.
func (h *Hub) watch(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last string
	for {
		since, err := h.opts.health()
		if now := estadoKey(err); now != last {
			last = now
			h.setEstado(since, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func estadoKey(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (h *Hub) setEstado(since time.Time, err error) {
	data := EstadoEvent{Conectado: err == nil}
	if err != nil {
		s := since.UTC()
		data.Error, data.SinConexionDesde = err.Error(), &s
	}
	body, _ := json.Marshal(data)
	ev := &event{wire: encode(0, "estado", body)}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.estado, h.stale = ev, err != nil
	h.broadcast(ev)
}

// currentEstado is the last estado event sent, nil before the first.
func (h *Hub) currentEstado() *event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.estado
}

// Clients is how many clients are connected.
func (h *Hub) Clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// encode writes one event; data is one line of JSON.
func encode(seq uint64, name string, data []byte) []byte {
	data = bytes.TrimRight(data, "\n")
	b := make([]byte, 0, len(data)+48)
	b = appendHead(b, seq, name)
	b = append(b, data...)
	return append(b, "\n\n"...)
}

// encodeHead is what precedes an event's data.
func encodeHead(seq uint64, name string) []byte { return appendHead(make([]byte, 0, 48), seq, name) }

func appendHead(b []byte, seq uint64, name string) []byte {
	if seq > 0 {
		b = append(b, "id: "...)
		b = strconv.AppendUint(b, seq, 10)
		b = append(b, '\n')
	}
	b = append(b, "event: "...)
	b = append(b, name...)
	return append(b, "\ndata: "...)
}
