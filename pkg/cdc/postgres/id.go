package postgres

import (
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pglogrepl"

	"github.com/reportes/reportes/pkg/cdc"
)

// Snapshot rows are identified by their key: all rows of a snapshot share
// its position. A key is any text, and an id travels as the Nats-Msg-Id
// header, where a line break ends the header (nats.go turns it into a
// space), leading and trailing blanks are trimmed and a long value makes a
// protocol line NATS refuses. Each of those would merge or break ids, and
// merged ids are deduplicated: a row would be lost. So the parts of an id
// that come from the source go through idPart.

// idPart makes a source value usable inside a message id, injectively:
// printable ASCII and graphic non-space Unicode stay as they are, every
// other byte (and '%', '~' and ':', which the escape, cdc.Bound and the id's
// separators use) becomes %XX, and the result is bounded by cdc.Bound. The
// result is never empty for a non-empty value, has no blanks nor control
// characters and is at most cdc.MaxTokenBytes long.
func idPart(s string) string {
	i := 0
	for i < len(s) && idSafeASCII(s[i]) {
		i++
	}
	if i == len(s) {
		return cdc.Bound(s)
	}
	const hex = "0123456789ABCDEF"
	out := make([]byte, 0, len(s)+8)
	out = append(out, s[:i]...)
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r < utf8.RuneSelf && idSafeASCII(s[i]):
			out = append(out, s[i])
		case r >= utf8.RuneSelf && !(r == utf8.RuneError && size == 1) && unicode.IsGraphic(r) && !unicode.IsSpace(r):
			out = append(out, s[i:i+size]...)
		default:
			for _, b := range []byte(s[i : i+size]) {
				out = append(out, '%', hex[b>>4], hex[b&0xF])
			}
		}
		i += size
	}
	return cdc.Bound(string(out))
}

func idSafeASCII(b byte) bool { return b > ' ' && b < 0x7f && b != '%' && b != '~' && b != ':' }

// snapshotRowID is the id of a snapshot row: "pg:<slot>:<LSN>:<table>:<key>".
func snapshotRowID(slot string, lsn pglogrepl.LSN, table, key string) string {
	return "pg:" + slot + ":" + lsn.String() + ":" + idPart(table) + ":" + idPart(key)
}

// snapshotMarkerID is the id of a snapshot's begin or end marker. Its last
// part starts with '~', which idPart never puts first, so a row whose key is
// "snapshot_begin" does not take the marker's id.
func snapshotMarkerID(slot string, lsn pglogrepl.LSN, table string, op cdc.Op) string {
	return "pg:" + slot + ":" + lsn.String() + ":" + idPart(table) + ":~" + string(op)
}
