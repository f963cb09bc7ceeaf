package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/bson"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/live"
	"github.com/reportes/reportes/pkg/projection"
)

// follower is a client of the dashboard's event stream that keeps the
// dashboard the events describe.
type follower struct {
	mu      sync.Mutex
	last    string // the last event id
	events  map[string]int
	d       projection.Dashboard
	sellers map[string]projection.Seller
	cancel  context.CancelFunc
	done    chan struct{}
}

func follow(t *testing.T, url, lastID string) *follower {
	t.Helper()
	return followWith(t, url, lastID, "")
}

// followWith follows with token as the bearer token, when not empty.
func followWith(t *testing.T, url, lastID, token string) *follower {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("stream: %v %v", resp, err)
	}
	f := &follower{events: map[string]int{}, sellers: map[string]projection.Seller{}, cancel: cancel, done: make(chan struct{}), last: lastID}
	go func() {
		defer close(f.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<22)
		var id, name string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				id = line[4:]
			case strings.HasPrefix(line, "event: "):
				name = line[7:]
			case strings.HasPrefix(line, "data: "):
				f.apply(t, id, name, []byte(line[6:]))
				id, name = "", ""
			}
		}
	}()
	t.Cleanup(f.stop)
	return f
}

func (f *follower) stop() {
	f.cancel()
	<-f.done
}

func (f *follower) apply(t *testing.T, id, name string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events[name]++
	if id != "" {
		f.last = id
	}
	switch name {
	case "dashboard":
		f.d = projection.Dashboard{}
		if err := json.Unmarshal(data, &f.d); err != nil {
			t.Errorf("dashboard event: %v", err)
		}
		clear(f.sellers)
		for _, s := range f.d.DetallePorVendedor {
			f.sellers[s.Empleado] = s
		}
	case "update":
		var u live.UpdateEvent
		if err := json.Unmarshal(data, &u); err != nil {
			t.Errorf("update event: %v", err)
		}
		if u.MetricasGlobales != nil {
			f.d.MetricasGlobales = *u.MetricasGlobales
		}
		for _, s := range u.Vendedores {
			if s.EsEmpleado {
				f.sellers[s.Empleado] = s.Seller
			} else {
				delete(f.sellers, s.Empleado)
			}
		}
	}
}

// dashboard is what the follower holds, in the dashboard's order.
func (f *follower) dashboard() projection.Dashboard {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.d
	d.Frescura = projection.Freshness{}
	d.DetallePorVendedor = make([]projection.Seller, 0, len(f.sellers))
	for _, s := range f.sellers {
		d.DetallePorVendedor = append(d.DetallePorVendedor, s)
	}
	projection.SortSellers(d.DetallePorVendedor)
	return d
}

// lastPerSubject reads the metric stream as a subscriber that joins now:
// every seller's line and the totals.
func lastPerSubject(t *testing.T, js jetstream.JetStream, stream string) (map[string]live.SellerMessage, live.GlobalMessage) {
	t.Helper()
	ctx := context.Background()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy})
	if err != nil {
		t.Fatal(err)
	}
	sellers := map[string]live.SellerMessage{}
	var global live.GlobalMessage
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(msg.Subject(), ".global") {
			_ = json.Unmarshal(msg.Data(), &global)
		} else {
			var s live.SellerMessage
			_ = json.Unmarshal(msg.Data(), &s)
			sellers[s.Empleado] = s
		}
		if meta, _ := msg.Metadata(); meta != nil && meta.NumPending == 0 {
			return sellers, global
		}
	}
}

// fromSubjects is the dashboard the metric stream describes.
func fromSubjects(sellers map[string]live.SellerMessage, g live.GlobalMessage) projection.Dashboard {
	d := projection.Dashboard{MetricasGlobales: g.Global, DetallePorVendedor: []projection.Seller{}}
	for _, s := range sellers {
		if s.EsEmpleado {
			d.DetallePorVendedor = append(d.DetallePorVendedor, s.Seller)
		}
	}
	projection.SortSellers(d.DetallePorVendedor)
	return d
}

// TestLive runs three API replicas. Changes made one at a time reach the
// metric stream once each however many replicas publish them, a late
// subscriber of the stream and a client of the event stream both hold
// exactly the recount, a deleted employee gets a final message, a client
// that reconnects with Last-Event-ID gets what it missed without the whole
// dashboard, and the dashboard answers If-None-Match with 304.
func TestLive(t *testing.T) {
	e := newEnv(t)
	e.vars["VIEW_SNAPSHOT_INTERVAL"] = "0" // quieter logs: they show what each replica stored
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		if _, err := e.pg.Exec(ctx, `INSERT INTO empleados (codigo, nombre, rol, activo) VALUES ($1, $2, 'vendedor', true)`,
			fmt.Sprintf("L-%d", i), "Empleado"); err != nil {
			t.Fatal(err)
		}
	}
	ports, err := devstack.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	replicas := []string{e.vars["PORT"], strconv.Itoa(ports[0]), strconv.Itoa(ports[1])}
	// The replicas start on a stream that holds the snapshot already, so
	// that they all become ready at the same sequence.
	e.start("ingestor")
	waitReady(t, e.vars["INGESTOR_PORT"])
	e.start("api")
	e.startAs("api-2", "api", map[string]string{"PORT": replicas[1]})
	e.startAs("api-3", "api", map[string]string{"PORT": replicas[2]})
	want := e.converges(60 * time.Second)
	for _, port := range replicas[1:] {
		waitReady(t, port)
	}
	nc, err := nats.Connect(e.vars["NATS_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	metrics := e.vars["NATS_METRICS_STREAM"]
	stream := "http://127.0.0.1:" + replicas[1] + "/reportes/dashboard/stream"
	sse := follow(t, stream, "")
	changes := []func(){
		func() { e.insertOrder(t, "L-1") },
		func() { e.insertOrder(t, "L-2") },
		func() { e.insertOrder(t, "L-1") },
		func() { e.insertOrder(t, "NADIE") },
		func() { e.exec(t, `UPDATE empleados SET activo = false WHERE codigo = 'L-3'`) },
		func() { e.exec(t, `DELETE FROM empleados WHERE codigo = 'L-2'`) },
	}
	for i, change := range changes {
		change()
		want = e.converges(30 * time.Second)
		devstack.Eventually(t, 30*time.Second, func() (bool, string) {
			got := fromSubjects(lastPerSubject(t, js, metrics))
			want.Titulo = ""
			return reflect.DeepEqual(got, want), fmt.Sprintf("after change %d the metric stream holds\n %s\nwant\n %s", i, brief(got), brief(want))
		})
		devstack.Eventually(t, 30*time.Second, func() (bool, string) {
			got := sse.dashboard()
			got.Titulo = ""
			return reflect.DeepEqual(got, want), fmt.Sprintf("after change %d the event stream holds\n %s\nwant\n %s", i, brief(got), brief(want))
		})
		// Every replica dealt with the change before the next one, so that
		// none coalesces two changes another sent apart: each change is one
		// seller's line and the totals, after the 3 lines and the totals
		// of the start.
		e.oneCopy(t, js, metrics, replicas, uint64(4+2*(i+1)))
	}
	sellers, _ := lastPerSubject(t, js, metrics)
	if s, ok := sellers["L-2"]; !ok || s.EsEmpleado || s.UltimoCambio == nil {
		t.Errorf("the deleted employee's last message: %+v, want es_empleado false with ultimo_cambio", s)
	}

	info, err := js.Stream(ctx, metrics)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("3 replicas, %d changes: the metric stream stored %d messages", len(changes), info.CachedInfo().State.LastSeq)

	// Resume: what was missed, without the whole dashboard.
	last := sse.lastID()
	sse.stop()
	e.insertOrder(t, "L-1")
	want = e.converges(30 * time.Second)
	want.Titulo = ""
	again := follow(t, stream, last)
	devstack.Eventually(t, 30*time.Second, func() (bool, string) {
		again.mu.Lock()
		n := again.events["update"]
		again.mu.Unlock()
		return n > 0, "no update after Last-Event-ID " + last
	})
	if again.count("dashboard") != 0 {
		t.Errorf("a client resuming from %s was sent the whole dashboard", last)
	}

	// ETag and 304.
	url := "http://127.0.0.1:" + replicas[0] + "/reportes/dashboard"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if tag := resp.Header.Get("ETag"); tag == "" || resp2.StatusCode != http.StatusNotModified {
		t.Errorf("ETag %q, then %d; want a tag and 304", tag, resp2.StatusCode)
	}
}

// oneCopy waits until the stream holds want messages, each replica has
// dealt with each of them (stored it, found it a duplicate, or found the
// stream already holding it), and the replicas stored want in all: one
// copy of each update.
func (e *env) oneCopy(t *testing.T, js jetstream.JetStream, stream string, replicas []string, want uint64) {
	t.Helper()
	devstack.Eventually(t, 10*time.Second, func() (bool, string) {
		s, err := js.Stream(context.Background(), stream)
		if err != nil {
			return false, err.Error()
		}
		stored, total := s.CachedInfo().State.LastSeq, uint64(0)
		msg := fmt.Sprintf("the stream holds %d messages, want %d", stored, want)
		ok := stored == want
		for i, port := range replicas {
			got := map[string]uint64{}
			for _, r := range []string{"stored", "duplicate", "current"} {
				got[r] = uint64(e.metricAt(port, `reportes_live_metric_messages_total{result="`+r+`"}`))
			}
			total += got["stored"]
			dealt := got["stored"] + got["duplicate"] + got["current"]
			ok = ok && dealt == want
			msg += fmt.Sprintf("\nreplica %d: %v; it stored:\n%s", i+1, got, e.storedIDs([]string{"api", "api-2", "api-3"}[i]))
		}
		return ok && total == want, msg
	})
}

// storedIDs lists the metric-update ids a process logged as stored.
func (e *env) storedIDs(process string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ids []string
	for line := range strings.SplitSeq(e.procs[process].out.String(), "\n") {
		if strings.Contains(line, `"msg":"metric update"`) {
			ids = append(ids, line)
		}
	}
	return strings.Join(ids, "\n")
}

func (f *follower) lastID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func (f *follower) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.events[name]
}

func (e *env) insertOrder(t *testing.T, seller string) {
	t.Helper()
	if _, err := e.orders.InsertOne(context.Background(), bson.D{{Key: "vendedor", Value: seller}, {Key: "producto", Value: "p"}}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) exec(t *testing.T, sql string) {
	t.Helper()
	if _, err := e.pg.Exec(context.Background(), sql); err != nil {
		t.Fatal(err)
	}
}

// waitReady waits for the API on port to serve the dashboard.
func waitReady(t *testing.T, port string) {
	t.Helper()
	devstack.Eventually(t, 60*time.Second, func() (bool, string) {
		resp, err := http.Get("http://127.0.0.1:" + port + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}
