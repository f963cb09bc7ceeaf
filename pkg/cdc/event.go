package cdc

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
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
	// WithKeepOnOversize) and Before is dropped.
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

// Decode parses and validates an encoded Event in one pass over its bytes
// (scan.go): rebuilding a view from millions of events is bound by it. Field
// names are matched exactly; unknown fields are ignored; after and before are
// kept raw once their structure is known to be valid JSON. They share data's
// bytes rather than copy them: data must not change while e is in use.
func Decode(data []byte, e *Event) error {
	*e = Event{}
	return decodeFast(data, e)
}

// Subject returns the subject an event for collection is published on:
// prefix.source.collection, with characters that NATS reserves in subject
// tokens replaced by "_".
func Subject(prefix, source, collection string) string {
	return prefix + "." + source + "." + SubjectToken(collection, true)
}

// SubjectToken makes s safe to use inside a NATS subject. With keepDots the
// dots of s separate tokens (so "public.empleados" stays two tokens);
// otherwise they are replaced too.
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
		case r == '.', r == '*', r == '>', r <= ' ', r == 0x7f:
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
