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

// keyOf recognises the lowercase hex form of an ObjectID in one pass.
func keyOf(key string) orderKey {
	var k orderKey
	if len(key) != 24 {
		k.s = key
		return k
	}
	for i := range k.id {
		hi, ok1 := lowerHex(key[2*i])
		lo, ok2 := lowerHex(key[2*i+1])
		if !ok1 || !ok2 {
			return orderKey{s: key}
		}
		k.id[i] = hi<<4 | lo
	}
	k.oid = true
	return k
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

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
