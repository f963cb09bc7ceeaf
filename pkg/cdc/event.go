package cdc

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Op is the kind of change an Event describes.
type Op string

// Operations. Insert, Update, Delete and Snapshot carry a key; SnapshotBegin
// and SnapshotEnd bracket the rows or documents of one initial (or repeated)
// snapshot of a table or collection, so that consumers can drop the keys a
// snapshot no longer contains.
const (
	OpInsert        Op = "insert"
	OpUpdate        Op = "update"
	OpDelete        Op = "delete"
	OpSnapshot      Op = "snapshot"
	OpSnapshotBegin Op = "snapshot_begin"
	OpSnapshotEnd   Op = "snapshot_end"
)

// Sources.
const (
	SourcePostgres = "postgres"
	SourceMongo    = "mongo"
)

// Event is the envelope published for every change, whatever its source.
// It is encoded as JSON; docs/events.md documents it with examples.
type Event struct {
	// ID is unique per source position and is used as the Nats-Msg-Id.
	ID string `json:"id"`
	// Source is "postgres" or "mongo".
	Source string `json:"source"`
	// Collection names the table ("public.empleados") or collection
	// ("inventory_db.orders") the change belongs to.
	Collection string `json:"collection"`
	Op         Op     `json:"op"`
	// Key identifies the row or document: the primary key's text (a JSON
	// array for composite keys) or the document's _id (hex for ObjectIDs).
	Key string `json:"key,omitempty"`
	// Position is the source-native position: an LSN such as "0/16B3748",
	// an oplog timestamp "1732700000.3" or a change stream resume token.
	Position string `json:"position"`
	// Version orders the changes of one key: later changes have a greater or
	// equal version. Snapshot rows carry the snapshot's starting position.
	Version uint64 `json:"version"`
	// CommitTime is when the source committed the change (for snapshot rows:
	// when the snapshot started).
	CommitTime time.Time `json:"commit_time"`
	// Snapshot names the snapshot a snapshot row or marker belongs to.
	Snapshot string `json:"snapshot,omitempty"`
	// After is the row or document after the change, when known.
	After json.RawMessage `json:"after,omitempty"`
	// Before is the row or document (or only its key) before the change,
	// when the source provides it.
	Before json.RawMessage `json:"before,omitempty"`
	// Truncated is set when the event would not fit in a NATS message: After
	// then holds only the fields consumers were declared to need (see
	// stream.WithKeepOnOversize) and Before is dropped.
	Truncated bool `json:"truncated,omitempty"`
}

// ErrInvalidEvent is wrapped by every error Decode and Validate return.
var ErrInvalidEvent = errors.New("invalid event")

// Validate reports what makes an event unusable, if anything.
func (e *Event) Validate() error {
	switch {
	case e.ID == "":
		return fmt.Errorf("%w: missing id", ErrInvalidEvent)
	case e.Source == "":
		return fmt.Errorf("%w %s: missing source", ErrInvalidEvent, e.ID)
	case e.Collection == "":
		return fmt.Errorf("%w %s: missing collection", ErrInvalidEvent, e.ID)
	}
	switch e.Op {
	case OpInsert, OpUpdate, OpDelete, OpSnapshot:
		if e.Key == "" {
			return fmt.Errorf("%w %s: %s without key", ErrInvalidEvent, e.ID, e.Op)
		}
	case OpSnapshotBegin, OpSnapshotEnd:
		if e.Snapshot == "" {
			return fmt.Errorf("%w %s: %s without snapshot id", ErrInvalidEvent, e.ID, e.Op)
		}
	default:
		return fmt.Errorf("%w %s: unknown op %q", ErrInvalidEvent, e.ID, e.Op)
	}
	return nil
}

// DefaultSubjectPrefix is the subject prefix of change events.
const DefaultSubjectPrefix = "reportes.cdc"

// Subject returns the subject ev is published on under prefix:
//
//	<prefix>.<source>.<collection tokens>.<key token>                      a row event
//	<prefix>.<source>.<collection tokens>.~snapshot_begin.<series token>   a snapshot_begin marker
//	<prefix>.<source>.<collection tokens>.~snapshot_end.<series token>     a snapshot_end marker
//
// One subject per key is what lets a stream that keeps the last message of
// each subject (MaxMsgsPerSubject 1) keep exactly the current state: the
// last event of a key supersedes the ones before it. That holds because
// sources publish the events of one key in the order of their versions (a
// backfill's row carries a version past the changes published before it).
// Markers have subjects of their own, one for begin and one for end per
// collection and snapshot series (SnapshotSeries), so that neither replaces
// the other, and a TRUNCATE's bracket does not replace those of a backfill
// that is still open.
func Subject(prefix string, ev *Event) string {
	return string(AppendSubject(nil, CollectionSubject(prefix, ev.Source, ev.Collection), ev))
}

// AppendSubject appends to b the subject of ev given its collection's
// subject (CollectionSubject), which callers publishing many events keep.
func AppendSubject(b []byte, collection string, ev *Event) []byte {
	b = append(append(b, collection...), '.')
	switch ev.Op {
	case OpSnapshotBegin, OpSnapshotEnd:
		b = append(append(append(b, '~'), ev.Op...), '.')
		b = append(b, KeyToken(SnapshotSeries(ev.Snapshot))...)
	default:
		b = append(b, KeyToken(ev.Key)...)
	}
	return b
}

// CollectionSubject returns the subject under which the events of
// collection are published: prefix.source.collection, with characters that
// NATS reserves in subject tokens replaced by "_" (SubjectToken).
func CollectionSubject(prefix, source, collection string) string {
	return prefix + "." + source + "." + SubjectToken(collection, true)
}

// SnapshotSeries returns the series a snapshot belongs to: its name up to
// the position ("reportes" for "reportes@0/1947BB8", "truncate:public.empleados"
// for a TRUNCATE). A snapshot of a series supersedes the earlier ones.
func SnapshotSeries(name string) string {
	if i := strings.LastIndexByte(name, '@'); i >= 0 {
		return name[:i]
	}
	return name
}

// KeyToken returns the subject token of a key, injectively: two keys never
// share a token. Printable ASCII and graphic non-space Unicode stay as they
// are; every other byte, and '.', '*', '>' (NATS's separator and
// wildcards), '%' (the escape) and '~' (the bounded form's mark) becomes
// %XX; a result over MaxTokenBytes takes Bound's form (a cut prefix, "~" and
// 32 hex digits of its SHA-256). The empty key is "~", which no escaped key
// takes (an escaped key holds no "~", a bounded one holds 32 hex digits
// after it), nor do the marker tokens, which start with "~" too.
func KeyToken(key string) string {
	if key == "" {
		return "~"
	}
	return Bound(escape(key, keySafeASCII))
}

func keySafeASCII(b byte) bool {
	return b > ' ' && b < 0x7f && b != '.' && b != '*' && b != '>' && b != '%' && b != '~'
}

// MaxTokenBytes bounds a subject token, and a part of a message id, built
// from source data. NATS limits a protocol line to 4 KiB and closes a
// connection that sends a longer one, and a source value (a seller's code, a
// primary key) may be of any length: a longer value, or one holding "~", is
// cut at a rune boundary and ends with "~" and 32 hex digits of its SHA-256.
// A value kept as it is never holds "~" and a cut one always does, so no
// value can take another's bounded form, and finding two values of one form
// costs about 2^64 hashes.
const MaxTokenBytes = 64

// SubjectToken makes s safe to use inside a NATS subject. With keepDots the
// dots of s separate tokens (so "public.empleados" stays two tokens);
// otherwise they are replaced too. Characters NATS reserves (".", "*", ">",
// whitespace and control characters) become "_", invalid UTF-8 becomes
// U+FFFD, and every token is at most MaxTokenBytes long and bounded like
// Bound does.
func SubjectToken(s string, keepDots bool) string {
	if s == "" {
		return "_"
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == '.' && keepDots:
			b.WriteRune(r)
		case r == '.', r == '*', r == '>', r <= ' ', r == 0x7f, unicode.IsSpace(r), unicode.IsControl(r):
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
	}
	if !keepDots {
		return boundFrom(b.String(), s)
	}
	tokens := strings.Split(b.String(), ".")
	for i, tok := range tokens {
		switch {
		case tok == "":
			tokens[i] = "_" // "a..b" would be an invalid subject
		case len(tok) > MaxTokenBytes:
			tokens[i] = boundFrom(tok, tok)
		}
	}
	return strings.Join(tokens, ".")
}

// Bound returns s when it is at most MaxTokenBytes long and holds no "~",
// and otherwise its first bytes followed by "~" and 32 hex digits of the
// SHA-256 of s: the rule for source values inside message ids and KV keys.
func Bound(s string) string { return boundFrom(s, s) }

// boundFrom bounds token, made from original, hashing the original so that
// values that were made alike by replacement stay apart when cut.
func boundFrom(token, original string) string {
	if len(token) <= MaxTokenBytes && !strings.Contains(token, "~") {
		return token
	}
	sum := sha256.Sum256([]byte(original))
	const suffix = 1 + 32
	cut := min(len(token), MaxTokenBytes-suffix)
	for cut > 0 && cut < len(token) && !utf8.RuneStart(token[cut]) {
		cut--
	}
	return token[:cut] + "~" + hex.EncodeToString(sum[:16])
}
