package cdc

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// decodeTree is the reference decoder the one-pass decoder is fuzzed
// against (FuzzDecoders): it parses the whole event into a tree first.
func decodeTree(data []byte, ev *Event) error {
	*ev = Event{}
	var p fastjson.Parser
	v, err := p.ParseBytes(data)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	obj, err := v.Object()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	var ferr error
	str := func(v *fastjson.Value, name string) string {
		if v.Type() == fastjson.TypeNull {
			return ""
		}
		b, err := v.StringBytes()
		if err != nil && ferr == nil {
			ferr = fmt.Errorf("%w: field %s: %w", ErrInvalidEvent, name, err)
		}
		return validUTF8(b)
	}
	raw := func(v *fastjson.Value) []byte {
		if v.Type() == fastjson.TypeNull {
			return nil
		}
		return v.MarshalTo(nil)
	}
	obj.Visit(func(k []byte, v *fastjson.Value) {
		switch string(k) {
		case "id":
			ev.ID = str(v, "id")
		case "source":
			ev.Source = str(v, "source")
		case "collection":
			ev.Collection = str(v, "collection")
		case "op":
			ev.Op = Op(str(v, "op"))
		case "key":
			ev.Key = str(v, "key")
		case "position":
			ev.Position = str(v, "position")
		case "snapshot":
			ev.Snapshot = str(v, "snapshot")
		case "version":
			if v.Type() == fastjson.TypeNull {
				return
			}
			n, err := v.Uint64()
			if err != nil && ferr == nil {
				ferr = fmt.Errorf("%w: field version: %w", ErrInvalidEvent, err)
			}
			ev.Version = n
		case "commit_time":
			s := str(v, "commit_time")
			if s == "" && v.Type() == fastjson.TypeNull {
				return
			}
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil && ferr == nil {
				ferr = fmt.Errorf("%w: field commit_time: %w", ErrInvalidEvent, err)
			}
			ev.CommitTime = t
		case "after":
			ev.After = raw(v)
		case "before":
			ev.Before = raw(v)
		case "truncated":
			if v.Type() == fastjson.TypeNull {
				return
			}
			b, err := v.Bool()
			if err != nil && ferr == nil {
				ferr = fmt.Errorf("%w: field truncated: %w", ErrInvalidEvent, err)
			}
			ev.Truncated = b
		}
	})
	if ferr != nil {
		return ferr
	}
	return ev.Validate()
}

// validUTF8 replaces each byte that is not part of UTF-8 with U+FFFD, as
// encoding/json decodes strings (fastjson keeps them).
func validUTF8(b []byte) string {
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, b[:size]...)
		}
		b = b[size:]
	}
	return string(out)
}
