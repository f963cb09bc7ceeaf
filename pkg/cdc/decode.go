package cdc

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/reportes/reportes/pkg/rawjson"
)

// Decode parses and validates an encoded Event in one pass over its bytes
// (rawjson.Members): rebuilding a view from millions of events is bound by it.
// Field names are matched exactly; unknown fields are ignored; after and
// before are kept raw once their structure is known to be valid JSON. They
// share data's bytes rather than copy them: data must not change while e is
// in use.
func Decode(data []byte, e *Event) error {
	*e = Event{}
	if err := rawjson.Members(data, e, setField); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	return e.Validate()
}

// setField decodes the member key of an event, whose value is raw.
func setField(ev *Event, key []byte, raw []byte, escaped bool) error {
	var err error
	switch string(key) {
	case "id":
		ev.ID, err = rawjson.String(raw, escaped)
	case "source":
		ev.Source, err = internedValue(raw, escaped)
	case "collection":
		ev.Collection, err = internedValue(raw, escaped)
	case "op":
		var op string
		op, err = internedValue(raw, escaped)
		ev.Op = Op(op)
	case "key":
		ev.Key, err = rawjson.String(raw, escaped)
	case "position":
		ev.Position, err = rawjson.String(raw, escaped)
	case "snapshot":
		ev.Snapshot, err = rawjson.String(raw, escaped)
	case "version":
		if string(raw) != "null" {
			ev.Version, err = rawjson.Uint(raw)
		}
	case "commit_time":
		if string(raw) != "null" {
			ev.CommitTime, err = timeValue(raw, escaped)
		}
	case "after":
		if string(raw) != "null" {
			ev.After = raw
		}
	case "before":
		if string(raw) != "null" {
			ev.Before = raw
		}
	case "truncated":
		switch string(raw) {
		case "true":
			ev.Truncated = true
		case "false", "null":
		default:
			err = errors.New("not a boolean")
		}
	}
	if err != nil {
		return fmt.Errorf("field %s: %w", key, err)
	}
	return nil
}

// timeValue decodes a commit time, an RFC 3339 string.
func timeValue(raw []byte, escaped bool) (time.Time, error) {
	if !escaped && len(raw) >= 2 && raw[0] == '"' {
		return rawjson.Time(raw[1 : len(raw)-1])
	}
	s, err := rawjson.String(raw, escaped)
	if err != nil {
		return time.Time{}, err
	}
	return time.Parse(time.RFC3339Nano, s)
}

// interned are the few distinct sources and operations: decoding them
// returns these strings instead of allocating new ones.
var interned = [...]string{SourcePostgres, SourceMongo, string(OpInsert), string(OpUpdate), string(OpDelete),
	string(OpSnapshot), string(OpSnapshotBegin), string(OpSnapshotEnd)}

// seen holds the other names decoded so far, collections mostly: a stream
// names a handful, and each is allocated once instead of once per event.
// It stops growing at maxSeen names; a name beyond those is allocated each
// time, as it would be without it.
var seen atomic.Pointer[[]string]

const maxSeen = 64

func internedValue(raw []byte, escaped bool) (string, error) {
	if !escaped && len(raw) >= 2 && raw[0] == '"' {
		name := raw[1 : len(raw)-1]
		for _, s := range interned {
			if string(name) == s {
				return s, nil
			}
		}
		if names := seen.Load(); names != nil {
			for _, s := range *names {
				if string(name) == s {
					return s, nil
				}
			}
		}
	}
	s, err := rawjson.String(raw, escaped)
	if err == nil {
		remember(s)
	}
	return s, err
}

// remember adds s to seen, copying the list so that readers need no lock.
func remember(s string) {
	for {
		old := seen.Load()
		var names []string
		if old != nil {
			if len(*old) >= maxSeen || slices.Contains(*old, s) {
				return
			}
			names = append(make([]string, 0, len(*old)+1), *old...)
		}
		names = append(names, s)
		if seen.CompareAndSwap(old, &names) {
			return
		}
	}
}
