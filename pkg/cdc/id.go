package cdc

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Origin is what a source counts its positions in: a PostgreSQL
// replication slot, a MongoDB collection. It derives the message id of every
// event the source publishes from the event's position, so that publishing
// the same change again gives the same id and JetStream's duplicate window
// drops the copy; and the name of every snapshot it takes.
//
// An id travels as the Nats-Msg-Id header, where a line break ends the
// header (nats.go turns it into a space), blanks around the value are
// trimmed and a long value makes a protocol line NATS refuses: each would
// merge or break ids, and merged ids are deduplicated, so an event would be
// lost. Parts of an id taken from source data are therefore bounded (Bound)
// or escaped (PostgreSQL snapshot ids).
type Origin struct {
	source string
	name   string
	prefix string // "<tag>:<name>:"
}

// NewOrigin returns the origin of source named name: the slot of a
// PostgreSQL source, the namespace (database.collection) of a MongoDB one.
func NewOrigin(source, name string) Origin {
	tag := source
	if source == SourcePostgres {
		tag = "pg"
	}
	return Origin{source: source, name: name, prefix: tag + ":" + name + ":"}
}

// Source returns the source the origin belongs to.
func (o Origin) Source() string { return o.source }

// ID is the rule every message id follows:
//
//	<tag>:<name>:<part>[:<part>...]
//
// where tag is "pg" or "mongo", name the origin's name, and the parts are
// derived from the event's source position, followed by what tells apart
// the events at one position. Every other method builds its ids with it.
func (o Origin) ID(parts ...string) string {
	n := len(o.prefix) + len(parts)
	for _, p := range parts {
		n += len(p)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(o.prefix)
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(p)
	}
	return b.String()
}

// Change returns the id of the seq-th event at position, ID(position, seq):
// the changes of a PostgreSQL transaction at its final LSN, the operations
// of a MongoDB oplog entry at its timestamp. It also returns position as a
// string that shares the id's memory: both are built in one allocation,
// since this runs for every change.
func (o Origin) Change(position []byte, seq int) (id, pos string) {
	var buf [128]byte
	b := append(buf[:0], o.prefix...)
	start := len(b)
	b = append(b, position...)
	end := len(b)
	id = string(strconv.AppendInt(append(b, ':'), int64(seq), 10))
	return id, id[start:end]
}

// SnapshotName returns the name of the snapshot taken at position, which
// its events carry (Event.Snapshot): <name>@<position>.
func (o Origin) SnapshotName(position string) string { return o.name + "@" + position }

// The ids of snapshot rows and markers keep the layouts each source first
// published, since streams deduplicate on them. A PostgreSQL slot spans
// several tables: its ids name the table, and escape it and the key
// (idPart). A MongoDB origin is one collection: its row ids bound the key
// (Bound), and its marker ids put the operation where a row id has "snap",
// so that no _id can take a marker's id.

// SnapshotRow returns the id of the row with key of collection in the
// snapshot at position:
//
//	pg:<slot>:<LSN>:<table>:<key>
//	mongo:<ns>:snap:<position>:<key>
func (o Origin) SnapshotRow(position, collection, key string) string {
	if o.source == SourcePostgres {
		return o.ID(position, idPart(collection), idPart(key))
	}
	return o.ID("snap", position, keyPart(key))
}

// keyPart is a MongoDB key inside an id: as it is (bounded), the layout
// first published, unless it holds what the header would mangle (blanks,
// control characters, invalid UTF-8) or '%': then escaped by idPart, so
// that "a\nb" and "a b" keep apart. An escaped part always holds a '%' and
// a key left as it is never does, so the two kinds cannot meet.
func keyPart(key string) string {
	for i := 0; i < len(key); {
		r, size := utf8.DecodeRuneInString(key[i:])
		ascii := r < utf8.RuneSelf
		if (ascii && (key[i] <= ' ' || key[i] == 0x7f || key[i] == '%')) ||
			(!ascii && ((r == utf8.RuneError && size == 1) || !unicode.IsGraphic(r) || unicode.IsSpace(r))) {
			return idPart(key)
		}
		i += size
	}
	return Bound(key)
}

// SnapshotMarker returns the id of the begin or end marker (op) of
// collection in the snapshot at position:
//
//	pg:<slot>:<LSN>:<table>:~<op>
//	mongo:<ns>:<op>:<position>
//
// A PostgreSQL marker's last part starts with '~', which idPart never puts
// first, so a row whose key is "snapshot_begin" does not take its id.
func (o Origin) SnapshotMarker(position, collection string, op Op) string {
	if o.source == SourcePostgres {
		return o.ID(position, idPart(collection), "~"+string(op))
	}
	return o.ID(string(op), position)
}

// idPart makes a source value usable inside a message id, injectively:
// printable ASCII and graphic non-space Unicode stay as they are, every
// other byte (and '%', '~' and ':', which the escape, Bound and the id's
// separators use) becomes %XX, and the result is bounded by Bound. The
// result is never empty for a non-empty value, has no blanks nor control
// characters and is at most MaxTokenBytes long.
func idPart(s string) string { return Bound(escape(s, idSafeASCII)) }

func idSafeASCII(b byte) bool { return b > ' ' && b < 0x7f && b != '%' && b != '~' && b != ':' }

// escape returns s with every byte of it that is neither an ASCII byte
// safe accepts nor part of a graphic, non-space, valid UTF-8 rune written
// as %XX. safe must refuse '%', which makes the escape injective: '%'
// always starts an escape, and every other byte stands for itself. s
// itself is returned, without copying, when nothing needs escaping.
func escape(s string, safe func(byte) bool) string {
	i := 0
	for i < len(s) && safe(s[i]) {
		i++
	}
	if i == len(s) {
		return s
	}
	const hex = "0123456789ABCDEF"
	out := make([]byte, 0, len(s)+8)
	out = append(out, s[:i]...)
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r < utf8.RuneSelf && safe(s[i]):
			out = append(out, s[i])
		case r >= utf8.RuneSelf && (r != utf8.RuneError || size != 1) && unicode.IsGraphic(r) && !unicode.IsSpace(r):
			out = append(out, s[i:i+size]...)
		default:
			for _, b := range []byte(s[i : i+size]) {
				out = append(out, '%', hex[b>>4], hex[b&0xF])
			}
		}
		i += size
	}
	return string(out)
}
