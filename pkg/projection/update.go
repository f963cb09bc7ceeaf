package projection

import (
	"bytes"
	"time"
)

// Update is what one applied batch of events changed, as the view holds it
// right after the batch: the lines it names are exactly the view's at Seq.
// Lines are absolute values, not differences, so a later Update supersedes
// an earlier one for the sellers it names.
type Update struct {
	// From and Seq bound the stream sequences the batch covered: (From, Seq].
	From, Seq uint64
	// CommitTime is the source commit time of the newest change.
	CommitTime time.Time
	// Sellers holds the line of every seller a change touched, each with
	// the sequence of the last change that touched it.
	Sellers []SellerUpdate
	// Totals is set when a change moved them (any change of a collection
	// of ours does, an unusable one included).
	Totals *GlobalUpdate
}

// SellerUpdate is a seller's line at Seq, the sequence of the last change
// that touched it; the payload of its metric-update subject.
type SellerUpdate struct {
	Seq uint64 `json:"seq"`
	Seller
	// EsEmpleado is false when the code is not (or no longer) an employee's.
	EsEmpleado bool `json:"es_empleado"`
}

// GlobalUpdate is the totals at Seq, the sequence of the last change that
// moved them.
type GlobalUpdate struct {
	Seq uint64 `json:"seq"`
	Global
}

// DashboardSeq reads frescura.secuencia, the view's sequence, from the
// JSON of a Dashboard without decoding it: frescura is its last field,
// and the key cannot appear unescaped inside a string.
func DashboardSeq(body []byte) uint64 {
	key := []byte(`"secuencia":`)
	i := bytes.LastIndex(body, key)
	if i < 0 {
		return 0
	}
	var n uint64
	for _, c := range body[i+len(key):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

// updateOf is the Update of entries, just applied after the view was at
// from. The view changes only on the projector's goroutine, which calls
// this, so what it reads is exactly the view at the batch's last sequence.
func (v *View) updateOf(entries []Entry, from uint64) Update {
	u := Update{From: from, Seq: entries[len(entries)-1].Seq}
	last := map[string]uint64{} // seller code -> sequence of its last change
	var order []string
	var moved uint64
	for i := range entries {
		e := &entries[i]
		if e.Event.CommitTime.After(u.CommitTime) {
			u.CommitTime = e.Event.CommitTime
		}
		if e.Event.Collection != "" || e.Err != nil {
			moved = e.Seq
		}
		for _, code := range e.Change.Sellers {
			if _, seen := last[code]; !seen {
				order = append(order, code)
			}
			last[code] = e.Seq
		}
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	if len(order) > 0 {
		u.Sellers = v.linesLocked(order, last)
	}
	if moved != 0 {
		u.Totals = &GlobalUpdate{Seq: moved, Global: v.totalsLocked()}
	}
	return u
}

// linesLocked returns the current line of each code, labelled with seqs.
func (v *View) linesLocked(codes []string, seqs map[string]uint64) []SellerUpdate {
	byCode := make(map[string]*employee, len(codes))
	for _, e := range v.employees {
		if _, want := seqs[e.code]; want {
			if _, dup := byCode[e.code]; !dup {
				byCode[e.code] = e
			}
		}
	}
	out := make([]SellerUpdate, 0, len(codes))
	for _, code := range codes {
		s := SellerUpdate{Seq: seqs[code], Seller: Seller{Empleado: code, Estado: "Inactivo"}}
		if i, ok := v.sellerIdx[code]; ok {
			s.PedidosRealizados = v.counts[i]
		}
		if e := byCode[code]; e != nil {
			s.EsEmpleado, s.Rol = true, e.role
			if e.active {
				s.Estado = "Activo"
			}
		}
		out = append(out, s)
	}
	return out
}

// fullUpdate is the line of every employee and of every seller code of
// the orders, and the totals, labelled with the
// view's sequence: what a follower needs when the projector becomes ready.
func (v *View) fullUpdate() Update {
	v.mu.RLock()
	defer v.mu.RUnlock()
	seqs := make(map[string]uint64, len(v.employees))
	codes := make([]string, 0, len(v.employees))
	for _, e := range v.employees {
		if _, dup := seqs[e.code]; !dup {
			seqs[e.code] = v.seq
			codes = append(codes, e.code)
		}
	}
	// Codes of orders that are no employee's too: their subjects say so.
	for code := range v.sellerIdx {
		if _, dup := seqs[code]; !dup {
			seqs[code] = v.seq
			codes = append(codes, code)
		}
	}
	// From is the view's sequence: it covers no change, so that a client
	// resuming from before it is sent the whole dashboard, which also
	// drops what was deleted meanwhile, rather than these lines alone.
	return Update{
		From: v.seq, Seq: v.seq, CommitTime: v.commit, Sellers: v.linesLocked(codes, seqs),
		Totals: &GlobalUpdate{Seq: v.seq, Global: v.totalsLocked()},
	}
}
