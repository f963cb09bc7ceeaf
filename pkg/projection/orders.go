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

// oid reports whether key is the lowercase hex form of an ObjectID.
func oid(key string) ([12]byte, bool) {
	var id [12]byte
	if len(key) != 24 {
		return id, false
	}
	for i := 0; i < 24; i++ {
		c := key[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return id, false
		}
	}
	_, err := hex.Decode(id[:], []byte(key))
	return id, err == nil
}

func (x orderIndex) get(key string) (order, bool) {
	if id, ok := oid(key); ok {
		o, found := x.oids[id]
		return o, found
	}
	o, found := x.other[key]
	return o, found
}

func (x orderIndex) set(key string, o order) {
	if id, ok := oid(key); ok {
		x.oids[id] = o
		return
	}
	x.other[key] = o
}

func (x orderIndex) remove(key string) {
	if id, ok := oid(key); ok {
		delete(x.oids, id)
		return
	}
	delete(x.other, key)
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
