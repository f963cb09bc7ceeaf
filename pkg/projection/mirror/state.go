package mirror

import (
	"context"
	"time"

	"github.com/reportes/reportes/pkg/projection"
	"github.com/reportes/reportes/pkg/projection/pgstore"
)

// apply applies d, which follows its partition's position.
func (m *Mirror) apply(d pgstore.Delta) {
	m.mu.Lock()
	from := m.seqLocked()
	p := &m.parts[d.Partition]
	touched := map[string]bool{}
	for code, n := range d.Sellers {
		m.setCount(p, code, n)
		touched[code] = true
	}
	for _, e := range d.Employees {
		if prev, ok := m.employees[string(e.Key)]; ok {
			touched[prev.Code] = true
		}
		m.employees[string(e.Key)] = e
		touched[e.Code] = true
	}
	for _, k := range d.Gone {
		if prev, ok := m.employees[string(k)]; ok {
			touched[prev.Code] = true
			delete(m.employees, string(k))
		}
	}
	p.seq, p.orders = d.Seq, d.Orders
	if d.CommitTime.After(p.commit) {
		p.commit = d.CommitTime
	}
	m.applied = time.Now()
	m.changes++
	metricDeltas.Inc()
	u := m.updateLocked(from, touched)
	m.mu.Unlock()
	m.handOn(u)
}

func (m *Mirror) handOn(u projection.Update) {
	if m.onUpdate != nil {
		m.onUpdate(u)
	}
	if m.onApplied != nil {
		m.onApplied()
	}
}

// setCount sets partition p's count of code to n.
func (m *Mirror) setCount(p *part, code string, n int64) {
	m.totals[code] += n - p.sellers[code]
	if m.totals[code] == 0 {
		delete(m.totals, code)
	}
	if n == 0 {
		delete(p.sellers, code)
	} else {
		p.sellers[code] = n
	}
}

// reload loads partition n (every partition when n < 0) from the tables;
// a partition the mirror already holds at a later position is left alone.
func (m *Mirror) reload(ctx context.Context, n int) error {
	start := time.Now()
	st, err := m.store.Load(ctx, n)
	if err != nil {
		m.loadErr.Store(&problem{err: err, since: start})
		return err
	}
	m.loadErr.Store(nil)
	metricReloads.Inc()
	m.mu.Lock()
	for pn, ps := range st.Partitions {
		p := &m.parts[pn]
		if m.loaded.Load() && ps.Seq < p.seq {
			if pn == 0 {
				st.Employees = nil
			}
			continue
		}
		for code := range p.sellers {
			m.setCount(p, code, 0)
		}
		p.sellers = map[string]int64{}
		for code, c := range ps.Sellers {
			m.setCount(p, code, c)
		}
		p.seq, p.orders, p.commit = ps.Seq, ps.Orders, ps.CommitTime
	}
	if st.Employees != nil {
		m.employees = st.Employees
	}
	m.applied = time.Now()
	m.changes++
	u := m.fullUpdateLocked()
	m.mu.Unlock()
	if !m.loaded.Swap(true) {
		m.logger.Info("view loaded from the store", "partitions", len(m.parts), "sellers", len(m.totals),
			"employees", len(m.employees), "seq", u.Seq, "took", time.Since(start).Round(time.Millisecond))
	} else {
		m.logger.Info("view partition reloaded from the store", "partition", n, "seq", u.Seq)
	}
	m.handOn(u)
	return nil
}

func (m *Mirror) seqLocked() uint64 {
	var s uint64
	for _, p := range m.parts {
		s += p.seq
	}
	return s
}

func (m *Mirror) commitLocked() time.Time {
	var c time.Time
	for _, p := range m.parts {
		if p.commit.After(c) {
			c = p.commit
		}
	}
	return c
}

func (m *Mirror) totalsLocked() projection.Global {
	g := projection.Global{TotalEmpleados: len(m.employees)}
	var orders int64
	for _, p := range m.parts {
		orders += p.orders
	}
	g.TotalPedidosProcesados = int(orders)
	matched := map[string]bool{}
	var matchedOrders int64
	for _, e := range m.employees {
		if !matched[e.Code] {
			matched[e.Code] = true
			matchedOrders += m.totals[e.Code]
		}
	}
	g.PedidosSinEmpleado = orders - matchedOrders
	return g
}

func (m *Mirror) dashboardLocked() projection.Dashboard {
	seq := m.seqLocked()
	d := projection.Dashboard{
		Titulo: m.title, MetricasGlobales: m.totalsLocked(),
		DetallePorVendedor: make([]projection.Seller, 0, len(m.employees)),
		Frescura:           projection.Freshness{Secuencia: seq},
	}
	if c := m.commitLocked(); !c.IsZero() {
		a := m.applied
		d.Frescura.UltimoCambio, d.Frescura.Aplicado = &c, &a
	}
	for _, e := range m.employees {
		d.DetallePorVendedor = append(d.DetallePorVendedor, projection.Seller{
			Empleado: e.Code, Rol: e.Role, PedidosRealizados: m.totals[e.Code], Estado: estado(e.Active),
		})
	}
	projection.SortSellers(d.DetallePorVendedor)
	return d
}

func estado(active bool) string {
	if active {
		return "Activo"
	}
	return "Inactivo"
}

// updateLocked is the Update of a change that moved the view from
// sequence from and touched the codes.
func (m *Mirror) updateLocked(from uint64, codes map[string]bool) projection.Update {
	seq := m.seqLocked()
	u := projection.Update{From: from, Seq: seq, CommitTime: m.commitLocked(), Totals: &projection.GlobalUpdate{Seq: seq, Global: m.totalsLocked()}}
	byCode := make(map[string]pgstore.Employee, len(codes))
	for _, e := range m.employees {
		if _, dup := byCode[e.Code]; codes[e.Code] && !dup {
			byCode[e.Code] = e
		}
	}
	for code := range codes {
		s := projection.SellerUpdate{Seq: seq, Seller: projection.Seller{Empleado: code, Estado: "Inactivo", PedidosRealizados: m.totals[code]}}
		if e, ok := byCode[code]; ok {
			s.EsEmpleado, s.Rol, s.Estado = true, e.Role, estado(e.Active)
		}
		u.Sellers = append(u.Sellers, s)
	}
	return u
}

// fullUpdateLocked is every line and the totals at the view's sequence,
// covering no change (From == Seq), as projection's full update is.
func (m *Mirror) fullUpdateLocked() projection.Update {
	codes := make(map[string]bool, len(m.totals)+len(m.employees))
	for code := range m.totals {
		codes[code] = true
	}
	for _, e := range m.employees {
		codes[e.Code] = true
	}
	seq := m.seqLocked()
	return m.updateLocked(seq, codes)
}
