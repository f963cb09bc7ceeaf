package projection

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// A view snapshot is the view's whole state at one stream sequence, so that
// a new process can load it and replay only the events after it instead of
// the whole stream. It holds what the events built (orders with their
// seller and version, employees, sellers, snapshots of the sources in
// progress), never anything derived: counts are recomputed on load.
//
// Layout: the magic, then a JSON header (uvarint length first), then the
// sections in the order encodeSnapshot writes them, each a uvarint count of
// entries; strings are a uvarint length and the bytes. A snapshot taken under
// another schema, or in a format this code does not know, is refused: the
// view is then rebuilt from the stream.

const snapshotMagic = "reportes-view\x00"

// snapshotFormat is bumped whenever the layout or the meaning of the state
// changes; a snapshot of another format is refused.
const snapshotFormat = 1

// ErrSnapshotMismatch is wrapped by Restore when a snapshot was taken under
// a different schema or format.
var ErrSnapshotMismatch = errors.New("snapshot does not match this view")

type snapshotHeader struct {
	Format      int       `json:"format"`
	Employees   string    `json:"employees"`
	CodeField   string    `json:"code_field"`
	RoleField   string    `json:"role_field"`
	ActiveField string    `json:"active_field"`
	Orders      string    `json:"orders"`
	SellerField string    `json:"seller_field"`
	Seq         uint64    `json:"seq"`
	Changes     uint64    `json:"changes"`
	Commit      time.Time `json:"commit"`
	Applied     time.Time `json:"applied"`
}

func (v *View) header() snapshotHeader {
	s := v.schema
	return snapshotHeader{Format: snapshotFormat, Employees: s.Employees, CodeField: s.CodeField, RoleField: s.RoleField,
		ActiveField: s.ActiveField, Orders: s.Orders, SellerField: s.SellerField}
}

// Snapshot encodes the view's state and returns it with the stream
// sequence it reflects. Writers wait while it is encoded (about 50 ms per
// million orders); readers do not.
func (v *View) Snapshot() ([]byte, uint64) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	h := v.header()
	h.Seq, h.Changes, h.Commit, h.Applied = v.seq, v.changes, v.commit, v.applied
	hj, _ := json.Marshal(h)

	b := make([]byte, 0, 64+len(hj)+v.orders.len()*24)
	b = append(b, snapshotMagic...)
	b = appendString(b, string(hj))
	b = binary.AppendUvarint(b, uint64(len(v.sellers)))
	for _, s := range v.sellers {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(len(v.orders.oids)))
	for id, o := range v.orders.oids {
		b = append(b, id[:]...)
		b = appendOrder(b, o)
	}
	b = binary.AppendUvarint(b, uint64(len(v.orders.other)))
	for k, o := range v.orders.other {
		b = appendString(b, k)
		b = appendOrder(b, o)
	}
	b = binary.AppendUvarint(b, uint64(len(v.employees)))
	for k, e := range v.employees {
		b = appendString(b, k)
		b = appendString(b, e.code)
		b = appendString(b, e.role)
		b = appendBool(b, e.active)
		b = binary.AppendUvarint(b, e.version)
	}
	b = binary.AppendUvarint(b, uint64(len(v.pending)))
	for coll, p := range v.pending {
		b = appendString(b, coll)
		b = appendString(b, p.id)
		b = binary.AppendUvarint(b, p.version)
		b = binary.AppendUvarint(b, uint64(len(p.stale)))
		for k := range p.stale {
			b = appendString(b, k)
		}
	}
	return b, v.seq
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendBool(b []byte, x bool) []byte {
	if x {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendOrder(b []byte, o order) []byte {
	b = binary.AppendVarint(b, int64(o.seller))
	return binary.AppendUvarint(b, o.version())
}

// Restore loads a snapshot into v, which must be empty (nothing applied
// yet), and returns the stream sequence it reflects. On error v is left
// empty.
func (v *View) Restore(data []byte) (uint64, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seq != 0 || v.changes != 0 {
		return 0, errors.New("restore snapshot: the view is not empty")
	}
	fresh, err := NewView(v.schema)
	if err != nil {
		return 0, err
	}
	if err := fresh.decodeSnapshot(data); err != nil {
		return 0, fmt.Errorf("restore snapshot: %w", err)
	}
	v.employees, v.orders, v.sellers, v.sellerIdx = fresh.employees, fresh.orders, fresh.sellers, fresh.sellerIdx
	v.counts, v.assigned, v.pending = fresh.counts, fresh.assigned, fresh.pending
	v.seq, v.changes, v.commit, v.applied = fresh.seq, fresh.changes, fresh.commit, fresh.applied
	return v.seq, nil
}

// decodeSnapshot fills fresh, an empty view no one else holds.
func (v *View) decodeSnapshot(data []byte) error {
	r := &snapReader{b: data}
	h, err := v.readHeader(r)
	if err != nil {
		return err
	}
	v.seq, v.changes, v.commit, v.applied = h.Seq, h.Changes, h.Commit, h.Applied
	for range r.count() {
		v.intern(string(r.bytes()))
	}
	if r.err == nil && len(v.sellers) != len(v.sellerIdx) {
		return errors.New("snapshot holds a seller twice")
	}
	v.readOrders(r)
	if r.err != nil {
		return r.err
	}
	v.recount()
	v.readEmployees(r)
	v.readPending(r)
	if r.err == nil && r.off != len(r.b) {
		r.err = errors.New("data after the snapshot")
	}
	return r.err
}

// readHeader reads the magic and the header, and refuses a snapshot taken
// under another schema or format.
func (v *View) readHeader(r *snapReader) (snapshotHeader, error) {
	if string(r.next(len(snapshotMagic))) != snapshotMagic {
		return snapshotHeader{}, fmt.Errorf("%w: not a view snapshot", ErrSnapshotMismatch)
	}
	var h snapshotHeader
	if err := json.Unmarshal(r.bytes(), &h); err != nil || r.err != nil {
		return snapshotHeader{}, fmt.Errorf("snapshot header: %w", errors.Join(r.err, err))
	}
	want := v.header()
	got := h
	got.Seq, got.Changes, got.Commit, got.Applied = 0, 0, time.Time{}, time.Time{}
	if got != want {
		return snapshotHeader{}, fmt.Errorf("%w: taken with format %d over %s/%s (code %s, seller %s), this view is format %d over %s/%s (code %s, seller %s)",
			ErrSnapshotMismatch, h.Format, h.Employees, h.Orders, h.CodeField, h.SellerField,
			want.Format, want.Employees, want.Orders, want.CodeField, want.SellerField)
	}
	return h, nil
}

// readOrders reads the orders keyed by ObjectID, then the others.
func (v *View) readOrders(r *snapReader) {
	n := r.count()
	v.orders.oids = make(map[[12]byte]order, n)
	for range n {
		var id [12]byte
		copy(id[:], r.next(12))
		v.orders.oids[id] = r.order(len(v.sellers))
	}
	for range r.count() {
		k := string(r.bytes())
		v.orders.other[k] = r.order(len(v.sellers))
	}
}

// recount derives the counts per seller from the orders.
func (v *View) recount() {
	count := func(o order) {
		if o.seller != noSeller {
			v.counts[o.seller]++
			v.assigned++
		}
	}
	for _, o := range v.orders.oids {
		count(o)
	}
	for _, o := range v.orders.other {
		count(o)
	}
}

func (v *View) readEmployees(r *snapReader) {
	for range r.count() {
		k := string(r.bytes())
		e := &employee{code: string(r.bytes()), role: string(r.bytes()), active: r.bool(), version: r.uvarint()}
		v.employees[k] = e
	}
}

// readPending reads the snapshots of the sources in progress.
func (v *View) readPending(r *snapReader) {
	for range r.count() {
		coll := string(r.bytes())
		p := &pendingSnapshot{id: string(r.bytes()), version: r.uvarint(), stale: map[string]struct{}{}}
		for range r.count() {
			p.stale[string(r.bytes())] = struct{}{}
		}
		v.pending[coll] = p
	}
}

// snapReader reads a snapshot; after the first error every read returns
// zero values and counts of 0, so decoding stops without checks at each step.
type snapReader struct {
	b   []byte
	off int
	err error
}

var errTruncated = errors.New("snapshot is truncated or corrupt")

func (r *snapReader) next(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b)-r.off {
		r.err = errTruncated
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *snapReader) uvarint() uint64 { return readVarint(r, binary.Uvarint) }

func (r *snapReader) varint() int64 { return readVarint(r, binary.Varint) }

// readVarint reads one number with decode (binary.Uvarint or Varint).
func readVarint[T uint64 | int64](r *snapReader, decode func([]byte) (T, int)) T {
	if r.err != nil {
		return 0
	}
	x, n := decode(r.b[r.off:])
	if n <= 0 {
		r.err = errTruncated
		return 0
	}
	r.off += n
	return x
}

// count reads an entry count; a count the remaining bytes cannot hold (at
// least one byte per entry) is corruption, not a reason to loop for ever.
func (r *snapReader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)-r.off) { //nolint:gosec // off never passes len(b)
		r.err = errTruncated
		return 0
	}
	return int(n) //nolint:gosec // bounded by len(b) just above
}

func (r *snapReader) bytes() []byte { return r.next(r.count()) }

func (r *snapReader) bool() bool {
	b := r.next(1)
	if r.err != nil {
		return false
	}
	if b[0] > 1 {
		r.err = errTruncated
	}
	return b[0] == 1
}

func (r *snapReader) order(sellers int) order {
	s := r.varint()
	version := r.uvarint()
	if r.err == nil && (s < noSeller || s >= int64(sellers)) {
		r.err = fmt.Errorf("snapshot names seller %d of %d", s, sellers)
	}
	if r.err != nil {
		return order{}
	}
	return newOrder(int32(s), version) //nolint:gosec // checked against the number of sellers above
}
