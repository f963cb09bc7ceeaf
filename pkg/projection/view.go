package projection

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/rawjson"
)

// ErrProblem is wrapped by every Problem.
var ErrProblem = errors.New("event not fully applicable")

// Problem describes an event the view applied only partly.
type Problem struct {
	EventID string
	Reason  string
}

func (p *Problem) Error() string { return fmt.Sprintf("event %s: %s", p.EventID, p.Reason) }

// Unwrap lets errors.Is(p, ErrProblem) hold.
func (p *Problem) Unwrap() error { return ErrProblem }

const noSeller = -1

// order is kept 4-byte aligned (12 bytes, not 16): with a 12-byte ObjectID
// key a map slot is then 24 bytes instead of 32.
type order struct {
	seller    int32 // index in View.sellers, or noSeller
	versionLo uint32
	versionHi uint32
}

func newOrder(seller int32, version uint64) order {
	return order{seller: seller, versionLo: uint32(version), versionHi: uint32(version >> 32)} //nolint:gosec // splitting on purpose
}

func (o order) version() uint64 { return uint64(o.versionHi)<<32 | uint64(o.versionLo) }

type employee struct {
	code    string
	role    string
	active  bool
	version uint64
}

type pendingSnapshot struct {
	id      string
	version uint64
	stale   map[string]struct{}
}

// View is the in-memory dashboard view. It is safe for concurrent use: one
// writer applies events while any number of readers render the dashboard.
type View struct {
	schema     Schema
	sellerPath []string

	mu        sync.RWMutex
	employees map[string]*employee
	orders    orderIndex
	sellers   []string         // interned seller codes
	sellerIdx map[string]int32 // code -> index in sellers
	counts    []int64          // orders per interned seller
	assigned  int64            // orders with a seller, any seller
	pending   map[string]*pendingSnapshot
	seq       uint64
	commit    time.Time
	applied   time.Time
	changes   uint64

	rendered atomic.Pointer[rendering]
	renderMu sync.Mutex
}

type rendering struct {
	changes uint64
	body    []byte
}

// NewView returns an empty view over schema.
func NewView(schema Schema) (*View, error) {
	if err := schema.validate(); err != nil {
		return nil, err
	}
	return &View{
		schema:     schema,
		sellerPath: schema.sellerPath(),
		employees:  map[string]*employee{},
		orders:     newOrderIndex(),
		sellerIdx:  map[string]int32{},
		pending:    map[string]*pendingSnapshot{},
	}, nil
}

// Seq returns the stream sequence of the last applied event.
func (v *View) Seq() uint64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.seq
}

// Change says which sellers' counts an event changed (for metric updates).
type Change struct {
	Sellers   []string
	Employees bool
}

// Entry is one event of a batch given to ApplyBatch, with what applying it
// did.
type Entry struct {
	Seq    uint64
	Event  cdc.Event
	Change Change
	// Err is a *Problem when the event was applied only partly. ApplyBatch
	// leaves an Err that is already set (a decoding error) alone and only
	// records the entry's sequence.
	Err error
}

// ApplyBatch applies entries in order under one lock, filling in their
// Change and Err. It is Apply for many events at once.
func (v *View) ApplyBatch(entries []Entry) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.applied = time.Now()
	for i := range entries {
		e := &entries[i]
		if e.Err != nil {
			_, _ = v.applyLocked(&cdc.Event{CommitTime: e.Event.CommitTime}, e.Seq) // no collection: records the sequence
			continue
		}
		e.Change, e.Err = v.applyLocked(&e.Event, e.Seq)
	}
}

// Apply applies ev, the event at stream sequence seq. The returned error is
// a *Problem when the event was applied only partly; the view stays
// consistent either way.
func (v *View) Apply(ev *cdc.Event, seq uint64) (Change, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.applied = time.Now()
	return v.applyLocked(ev, seq)
}

func (v *View) applyLocked(ev *cdc.Event, seq uint64) (Change, error) {
	if seq != 0 && seq <= v.seq {
		return Change{}, nil
	}
	if seq != 0 {
		v.seq = seq
	}
	if ev.CommitTime.After(v.commit) {
		v.commit = ev.CommitTime
	}
	v.changes++
	var ch Change
	var err error
	switch ev.Collection {
	case v.schema.Orders:
		ch, err = v.applyOrder(ev)
	case v.schema.Employees:
		ch, err = v.applyEmployee(ev)
	default:
		return Change{}, nil
	}
	return ch, err
}

func (v *View) snapshotMarker(ev *cdc.Event, keys func(yield func(string, uint64))) {
	switch ev.Op {
	case cdc.OpSnapshotBegin:
		p := &pendingSnapshot{id: ev.Snapshot, version: ev.Version, stale: map[string]struct{}{}}
		keys(func(k string, version uint64) {
			if version < ev.Version {
				p.stale[k] = struct{}{}
			}
		})
		v.pending[ev.Collection] = p
	}
}

// touched records that key was seen after a snapshot of collection began.
func (v *View) touched(collection, key string) {
	if p := v.pending[collection]; p != nil {
		delete(p.stale, key)
	}
}

// endSnapshot returns the keys to remove when a snapshot ends; keys lists
// the collection's keys with their versions.
//
// When the view saw the bracket begin, those are the keys it held then,
// older than the snapshot, that neither the snapshot nor a later change
// mentioned. A view rebuilt from a compacted stream may not have seen it:
// the stream keeps the last begin marker of each snapshot series, and a
// later snapshot's begin replaced this one's while the later one is still
// open. Versions give the same answer then: a row of the snapshot carries
// at least its version, a change after its start a greater one, so the
// keys older than the snapshot are those it and every later change left
// out. A pending bracket older than this one is settled by it too.
func (v *View) endSnapshot(ev *cdc.Event, keys func(yield func(string, uint64))) []string {
	p := v.pending[ev.Collection]
	if p != nil && p.id == ev.Snapshot {
		delete(v.pending, ev.Collection)
		out := make([]string, 0, len(p.stale))
		for k := range p.stale {
			out = append(out, k)
		}
		return out
	}
	if p != nil && p.version <= ev.Version {
		delete(v.pending, ev.Collection)
	}
	var out []string
	keys(func(k string, version uint64) {
		if version < ev.Version {
			out = append(out, k)
		}
	})
	return out
}

func (v *View) applyOrder(ev *cdc.Event) (Change, error) {
	switch ev.Op {
	case cdc.OpSnapshotBegin:
		v.snapshotMarker(ev, func(yield func(string, uint64)) {
			v.orders.each(func(k string, o order) { yield(k, o.version()) })
		})
		return Change{}, nil
	case cdc.OpSnapshotEnd:
		var ch Change
		for _, k := range v.endSnapshot(ev, func(yield func(string, uint64)) {
			v.orders.each(func(k string, o order) { yield(k, o.version()) })
		}) {
			ch.Sellers = append(ch.Sellers, v.removeOrder(keyOf(k))...)
		}
		return ch, nil
	}
	v.touched(ev.Collection, ev.Key)
	key := keyOf(ev.Key)
	prev, exists := v.orders.get(key)
	if exists && ev.Version < prev.version() {
		return Change{}, nil // stale copy of a change already superseded
	}
	if ev.Op == cdc.OpDelete {
		return Change{Sellers: v.removeOrder(key)}, nil
	}
	if ev.After == nil {
		// An update whose document the source could no longer read (it was
		// deleted meanwhile); the delete that follows settles it.
		if exists {
			v.orders.set(key, newOrder(prev.seller, ev.Version))
		}
		return Change{}, nil
	}
	code, problem := sellerOf(ev.After, v.sellerPath)
	idx := int32(noSeller)
	if problem == "" {
		idx = v.internBytes(code)
	}
	var ch Change
	if exists {
		if prev.seller == idx {
			v.orders.set(key, newOrder(idx, ev.Version))
			return Change{}, v.problem(ev, problem)
		}
		ch.Sellers = v.uncount(prev.seller)
	}
	v.orders.set(key, newOrder(idx, ev.Version))
	if idx != noSeller {
		v.counts[idx]++
		v.assigned++
		if ch.Sellers == nil {
			ch.Sellers = v.sellerList(idx)
		} else {
			ch.Sellers = append(ch.Sellers, v.sellers[idx])
		}
	}
	return ch, v.problem(ev, problem)
}

func (v *View) problem(ev *cdc.Event, reason string) error {
	if reason == "" {
		return nil
	}
	return &Problem{EventID: ev.ID, Reason: reason}
}

func (v *View) removeOrder(key orderKey) []string {
	prev, ok := v.orders.get(key)
	if !ok {
		return nil
	}
	v.orders.remove(key)
	return v.uncount(prev.seller)
}

func (v *View) uncount(idx int32) []string {
	if idx == noSeller {
		return nil
	}
	v.counts[idx]--
	v.assigned--
	return v.sellerList(idx)
}

// sellerList returns seller idx's code as a list of one that shares the
// array of interned codes, so that a Change costs no allocation per event.
// The codes are only ever appended to, and the list's capacity ends at its
// one element, so appending to it copies instead of writing into the array.
func (v *View) sellerList(idx int32) []string { return v.sellers[idx : idx+1 : idx+1] }

func (v *View) intern(code string) int32 {
	if i, ok := v.sellerIdx[code]; ok {
		return i
	}
	i := int32(len(v.sellers)) //nolint:gosec // more than 2^31 distinct sellers is not a dashboard
	v.sellers = append(v.sellers, code)
	v.counts = append(v.counts, 0)
	v.sellerIdx[code] = i
	return i
}

// internBytes is intern for a code read from a document: it copies the
// code only the first time it is seen.
func (v *View) internBytes(code []byte) int32 {
	if i, ok := v.sellerIdx[string(code)]; ok {
		return i
	}
	return v.intern(string(code))
}

func (v *View) applyEmployee(ev *cdc.Event) (Change, error) {
	switch ev.Op {
	case cdc.OpSnapshotBegin:
		v.snapshotMarker(ev, func(yield func(string, uint64)) {
			for k, e := range v.employees {
				yield(k, e.version)
			}
		})
		return Change{}, nil
	case cdc.OpSnapshotEnd:
		ch := Change{}
		for _, k := range v.endSnapshot(ev, func(yield func(string, uint64)) {
			for k, e := range v.employees {
				yield(k, e.version)
			}
		}) {
			if e := v.employees[k]; e != nil {
				ch.Sellers = append(ch.Sellers, e.code)
				delete(v.employees, k)
			}
		}
		ch.Employees = len(ch.Sellers) > 0
		return ch, nil
	}
	v.touched(ev.Collection, ev.Key)
	prev := v.employees[ev.Key]
	if prev != nil && ev.Version < prev.version {
		return Change{}, nil
	}
	if ev.Op == cdc.OpDelete {
		if prev != nil {
			delete(v.employees, ev.Key)
			return Change{Employees: true, Sellers: []string{prev.code}}, nil
		}
		return Change{}, nil
	}
	next, problems, err := v.readEmployee(ev, prev)
	if err != nil {
		return Change{}, err
	}
	v.employees[ev.Key] = next
	ch := Change{Employees: true, Sellers: []string{next.code}}
	if prev != nil && prev.code != next.code {
		ch.Sellers = append(ch.Sellers, prev.code)
	}
	if len(problems) > 0 {
		return ch, &Problem{EventID: ev.ID, Reason: fmt.Sprint(problems)}
	}
	return ch, nil
}

// readEmployee returns the employee ev's row makes of prev (nil for a new
// one), and what in the row it could not use (see Schema.Employee).
func (v *View) readEmployee(ev *cdc.Event, prev *employee) (*employee, []string, error) {
	var from *EmployeeRow
	if prev != nil {
		from = &EmployeeRow{Code: prev.code, Role: prev.role, Active: prev.active, Version: prev.version}
	}
	row, problems, err := v.schema.Employee(ev, from)
	if err != nil {
		return nil, nil, err
	}
	return &employee{code: row.Code, role: row.Role, active: row.Active, version: row.Version}, problems, nil
}

// sellerOf finds the seller code at path in an order document. It returns a
// reason when there is no usable code.
func sellerOf(doc json.RawMessage, path []string) ([]byte, string) {
	raw, found, err := rawjson.Lookup(doc, path)
	switch {
	case err != nil:
		return nil, "order is not valid JSON"
	case found == 0 && raw[0] != '{':
		return nil, "order is not a JSON object"
	case found < len(path) && raw[0] != '{':
		return nil, fmt.Sprintf("order field %q is not a document", joinPath(path[:found]))
	case found < len(path):
		return nil, fmt.Sprintf("order has no seller field %q", joinPath(path))
	case raw[0] != '"':
		return nil, fmt.Sprintf("order seller field %q is %.40s, want a string", joinPath(path), raw)
	}
	code, err := rawjson.StringBytes(raw)
	if err != nil {
		return nil, fmt.Sprintf("order seller field %q: %v", joinPath(path), err)
	}
	return code, ""
}

func joinPath(p []string) string {
	out := ""
	for i, s := range p {
		if i > 0 {
			out += "."
		}
		out += s
	}
	return out
}

// Dashboard is the response of GET /reportes/dashboard: the original
// service's shape plus a freshness block.
type Dashboard struct {
	Titulo             string    `json:"titulo"`
	MetricasGlobales   Global    `json:"metricas_globales"`
	DetallePorVendedor []Seller  `json:"detalle_por_vendedor"`
	Frescura           Freshness `json:"frescura"`
}

// Global holds the dashboard totals.
type Global struct {
	TotalEmpleados         int   `json:"total_empleados"`
	TotalPedidosProcesados int   `json:"total_pedidos_procesados"`
	PedidosSinEmpleado     int64 `json:"pedidos_sin_empleado"`
}

// Seller is one employee's line.
type Seller struct {
	Empleado          string `json:"empleado"`
	Rol               string `json:"rol"`
	PedidosRealizados int64  `json:"pedidos_realizados"`
	Estado            string `json:"estado"`
}

// Freshness says how current the view is.
type Freshness struct {
	// UltimoCambio is the source commit time of the newest applied change.
	UltimoCambio *time.Time `json:"ultimo_cambio"`
	// Aplicado is when the view last applied an event.
	Aplicado *time.Time `json:"aplicado"`
	// Secuencia is the stream sequence of the last applied event.
	Secuencia uint64 `json:"secuencia"`
}

// Dashboard computes the dashboard. Its cost depends on the number of
// employees, never on the number of orders.
func (v *View) Dashboard() Dashboard {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.dashboardLocked()
}

func (v *View) dashboardLocked() Dashboard {
	d := Dashboard{
		Titulo:             v.schema.Title,
		MetricasGlobales:   v.totalsLocked(),
		DetallePorVendedor: make([]Seller, 0, len(v.employees)),
		Frescura:           Freshness{Secuencia: v.seq},
	}
	if !v.commit.IsZero() {
		c, a := v.commit, v.applied
		d.Frescura.UltimoCambio, d.Frescura.Aplicado = &c, &a
	}
	for _, e := range v.employees {
		n := int64(0)
		if i, ok := v.sellerIdx[e.code]; ok {
			n = v.counts[i]
		}
		estado := "Inactivo"
		if e.active {
			estado = "Activo"
		}
		d.DetallePorVendedor = append(d.DetallePorVendedor, Seller{Empleado: e.code, Rol: e.role, PedidosRealizados: n, Estado: estado})
	}
	SortSellers(d.DetallePorVendedor)
	return d
}

// totalsLocked computes the global figures; orders of a code that several
// employees share are counted once.
func (v *View) totalsLocked() Global {
	g := Global{TotalEmpleados: len(v.employees), TotalPedidosProcesados: v.orders.len()}
	matched := make(map[int32]bool, len(v.employees))
	var matchedOrders int64
	for _, e := range v.employees {
		if i, ok := v.sellerIdx[e.code]; ok && !matched[i] {
			matched[i] = true
			matchedOrders += v.counts[i]
		}
	}
	g.PedidosSinEmpleado = int64(g.TotalPedidosProcesados) - matchedOrders
	return g
}

// SortSellers orders the detail: most orders first, then by code.
func SortSellers(s []Seller) {
	sort.Slice(s, func(i, j int) bool {
		if s[i].PedidosRealizados != s[j].PedidosRealizados {
			return s[i].PedidosRealizados > s[j].PedidosRealizados
		}
		if s[i].Empleado != s[j].Empleado {
			return s[i].Empleado < s[j].Empleado
		}
		return s[i].Rol < s[j].Rol
	})
}

// JSON returns the dashboard encoded as JSON. It is rendered at most once per
// change of the view, so serving it costs the same whatever the data size.
func (v *View) JSON() []byte {
	v.mu.RLock()
	changes := v.changes
	v.mu.RUnlock()
	if r := v.rendered.Load(); r != nil && r.changes == changes {
		return r.body
	}
	v.renderMu.Lock()
	defer v.renderMu.Unlock()
	if r := v.rendered.Load(); r != nil && r.changes >= changes {
		return r.body
	}
	v.mu.RLock()
	changes = v.changes
	d := v.dashboardLocked()
	v.mu.RUnlock()
	body, _ := json.Marshal(d)
	body = append(body, '\n')
	v.rendered.Store(&rendering{changes: changes, body: body})
	return body
}

// Seller returns the current line of code and whether it is an employee.
func (v *View) Seller(code string) (Seller, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := Seller{Empleado: code, Estado: "Inactivo"}
	if i, ok := v.sellerIdx[code]; ok {
		s.PedidosRealizados = v.counts[i]
	}
	for _, e := range v.employees {
		if e.code == code {
			s.Rol = e.role
			if e.active {
				s.Estado = "Activo"
			}
			return s, true
		}
	}
	return s, false
}

// Totals returns the global figures.
func (v *View) Totals() Global {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.totalsLocked()
}
