package projection

import "encoding/hex"

// orderIndex maps order keys to their state. Most keys are MongoDB
// ObjectIDs, which the sources render as 24 hex digits: those are kept as
// their 12 bytes inline in the map, with no string allocated per order, which
// halves the memory a million orders take. Any other key goes to a plain
// string map.
type orderIndex struct {
	oids  map[[12]byte]order
	other map[string]order
}

func newOrderIndex() orderIndex {
	return orderIndex{oids: map[[12]byte]order{}, other: map[string]order{}}
}

// orderKey is an order's key in the form the index stores it, worked out
// once per event.
type orderKey struct {
	id  [12]byte
	oid bool
	s   string // when not an ObjectID
}

// keyOf recognises the lowercase hex form of an ObjectID in one pass,
// without a branch per digit.
func keyOf(key string) orderKey {
	var k orderKey
	if len(key) != 24 {
		k.s = key
		return k
	}
	var bad byte
	for i := range k.id {
		hi, lo := hexDigit[key[2*i]], hexDigit[key[2*i+1]]
		bad |= hi | lo
		k.id[i] = hi<<4 | lo
	}
	if bad > 0xf {
		return orderKey{s: key}
	}
	k.oid = true
	return k
}

// hexDigit maps '0'-'9' and 'a'-'f' to their values and every other byte to
// 0xff.
var hexDigit = func() (t [256]byte) {
	for c := range t {
		switch {
		case '0' <= c && c <= '9':
			t[c] = byte(c - '0')
		case 'a' <= c && c <= 'f':
			t[c] = byte(c - 'a' + 10)
		default:
			t[c] = 0xff
		}
	}
	return t
}()

func (x orderIndex) get(k orderKey) (order, bool) {
	if k.oid {
		o, found := x.oids[k.id]
		return o, found
	}
	o, found := x.other[k.s]
	return o, found
}

func (x orderIndex) set(k orderKey, o order) {
	if k.oid {
		x.oids[k.id] = o
		return
	}
	x.other[k.s] = o
}

func (x orderIndex) remove(k orderKey) {
	if k.oid {
		delete(x.oids, k.id)
		return
	}
	delete(x.other, k.s)
}

func (x orderIndex) len() int { return len(x.oids) + len(x.other) }

// each calls fn for every order with its key as the sources render it.
func (x orderIndex) each(fn func(key string, o order)) {
	for id, o := range x.oids {
		fn(hex.EncodeToString(id[:]), o)
	}
	for k, o := range x.other {
		fn(k, o)
	}
}
