package cdc

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// This file holds the event decoder's hot path: one pass over the top-level
// object that finds each field's raw bytes, without building a tree. Values
// are checked as they are read (strings, numbers, booleans) or, for after
// and before, kept raw once their structure is known to be balanced JSON;
// consumers parse those themselves.

var errSyntax = errors.New("malformed JSON")

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"' and
// whether it holds escapes. Runs of plain bytes are skipped eight at a time:
// strings are most of an event's bytes.
func skipString(b []byte, i int) (int, bool, error) {
	escaped := false
	for j := i + 1; ; j++ {
		for j+8 <= len(b) {
			if m := specials(binary.LittleEndian.Uint64(b[j:])); m != 0 {
				j += bits.TrailingZeros64(m) >> 3
				break
			}
			j += 8
		}
		if j >= len(b) {
			return 0, false, errSyntax
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, escaped, nil
		case c == '\\':
			escaped = true
			j++
			if j >= len(b) {
				return 0, false, errSyntax
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) {
					return 0, false, errSyntax
				}
				for _, h := range b[j+1 : j+5] {
					if !isHex(h) {
						return 0, false, errSyntax
					}
				}
				j += 4
			default:
				return 0, false, errSyntax
			}
		case c < 0x20:
			return 0, false, errSyntax
		}
	}
}

const (
	lsbs = 0x0101010101010101
	msbs = 0x8080808080808080
)

// specials marks the bytes of w (read little-endian) that end or escape a
// string or are control characters: '"', '\\' or below 0x20. Each term is the
// classic has-zero-byte test; its lowest mark is exact (a borrow can only
// mark bytes above a true one), which is all skipString uses.
func specials(w uint64) uint64 {
	q := w ^ (lsbs * '"')
	s := w ^ (lsbs * '\\')
	return ((q-lsbs)&^q | (s-lsbs)&^s | (w-lsbs*0x20)&^w) & msbs
}

// skipValue returns the index after the JSON value starting at b[i].
func skipValue(b []byte, i int, depth int) (int, error) {
	if depth > 1000 {
		return 0, errSyntax
	}
	if i >= len(b) {
		return 0, errSyntax
	}
	switch c := b[i]; {
	case c == '"':
		j, _, err := skipString(b, i)
		return j, err
	case c == '{' || c == '[':
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		j := skipSpace(b, i+1)
		if j < len(b) && b[j] == closing {
			return j + 1, nil
		}
		for {
			var err error
			if c == '{' {
				if j >= len(b) || b[j] != '"' {
					return 0, errSyntax
				}
				if j, _, err = skipString(b, j); err != nil {
					return 0, err
				}
				j = skipSpace(b, j)
				if j >= len(b) || b[j] != ':' {
					return 0, errSyntax
				}
				j = skipSpace(b, j+1)
			}
			if j, err = skipValue(b, j, depth+1); err != nil {
				return 0, err
			}
			j = skipSpace(b, j)
			if j >= len(b) {
				return 0, errSyntax
			}
			if b[j] == closing {
				return j + 1, nil
			}
			if b[j] != ',' {
				return 0, errSyntax
			}
			j = skipSpace(b, j+1)
		}
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case c == '-' || isDigit(c):
		return skipNumber(b, i)
	}
	return 0, errSyntax
}

// skipNumber returns the index after the JSON number (RFC 8259 section 6)
// starting at b[i]; what follows is the caller's to check.
func skipNumber(b []byte, i int) (int, error) {
	digits := func(j int) (int, error) {
		if j >= len(b) || !isDigit(b[j]) {
			return 0, errSyntax
		}
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		return j, nil
	}
	j := i
	if b[j] == '-' {
		j++
	}
	var err error
	if j < len(b) && b[j] == '0' {
		j++
	} else if j, err = digits(j); err != nil {
		return 0, err
	}
	if j < len(b) && b[j] == '.' {
		if j, err = digits(j + 1); err != nil {
			return 0, err
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if j, err = digits(j); err != nil {
			return 0, err
		}
	}
	return j, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func literal(b []byte, i int, lit string) (int, error) {
	if bytes.HasPrefix(b[i:], []byte(lit)) {
		return i + len(lit), nil
	}
	return 0, errSyntax
}

// stringValue decodes a JSON string value; null is "".
func stringValue(raw []byte, escaped bool) (string, error) {
	if len(raw) == 4 && string(raw) == "null" {
		return "", nil
	}
	if len(raw) < 2 || raw[0] != '"' {
		return "", errors.New("not a string")
	}
	if !escaped && utf8.Valid(raw[1:len(raw)-1]) {
		return string(raw[1 : len(raw)-1]), nil
	}
	// Escapes, or bytes that are not UTF-8, which encoding/json replaces
	// with U+FFFD (one per byte) whether or not the string has escapes.
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// decodeFast decodes an event in one pass; see Decode.
func decodeFast(data []byte, ev *Event) error {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return fmt.Errorf("%w: not a JSON object", ErrInvalidEvent)
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return endOfObject(data, i+1, ev)
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return fmt.Errorf("%w: %w", ErrInvalidEvent, errSyntax)
		}
		kend, kesc, err := skipString(data, i)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
		}
		key := data[i+1 : kend-1]
		if kesc {
			k, err := stringValue(data[i:kend], kesc)
			if err != nil {
				return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
			}
			key = []byte(k)
		}
		i = skipSpace(data, kend)
		if i >= len(data) || data[i] != ':' {
			return fmt.Errorf("%w: %w", ErrInvalidEvent, errSyntax)
		}
		i = skipSpace(data, i+1)
		vstart := i
		escaped := false
		if i < len(data) && data[i] == '"' {
			i, escaped, err = skipString(data, i)
		} else {
			i, err = skipValue(data, i, 0)
		}
		if err != nil {
			return fmt.Errorf("%w: field %s: %w", ErrInvalidEvent, key, err)
		}
		if err := setField(ev, key, data[vstart:i], escaped); err != nil {
			return fmt.Errorf("%w: field %s: %w", ErrInvalidEvent, key, err)
		}
		i = skipSpace(data, i)
		if i < len(data) && data[i] == ',' {
			i = skipSpace(data, i+1)
			continue
		}
		if i < len(data) && data[i] == '}' {
			return endOfObject(data, i+1, ev)
		}
		return fmt.Errorf("%w: %w", ErrInvalidEvent, errSyntax)
	}
}

func endOfObject(data []byte, i int, ev *Event) error {
	if skipSpace(data, i) != len(data) {
		return fmt.Errorf("%w: data after the object", ErrInvalidEvent)
	}
	return ev.Validate()
}

func setField(ev *Event, key []byte, raw []byte, escaped bool) error {
	var err error
	switch string(key) {
	case "id":
		ev.ID, err = stringValue(raw, escaped)
	case "source":
		ev.Source, err = internedValue(raw, escaped)
	case "collection":
		ev.Collection, err = internedValue(raw, escaped)
	case "op":
		var op string
		op, err = internedValue(raw, escaped)
		ev.Op = Op(op)
	case "key":
		ev.Key, err = stringValue(raw, escaped)
	case "position":
		ev.Position, err = stringValue(raw, escaped)
	case "snapshot":
		ev.Snapshot, err = stringValue(raw, escaped)
	case "version":
		if string(raw) != "null" {
			ev.Version, err = uintValue(raw)
		}
	case "commit_time":
		if !escaped && len(raw) >= 2 && raw[0] == '"' {
			ev.CommitTime, err = timeValue(raw[1 : len(raw)-1])
			break
		}
		var s string
		if s, err = stringValue(raw, escaped); err == nil && string(raw) != "null" {
			ev.CommitTime, err = time.Parse(time.RFC3339Nano, s)
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
	return err
}

// uintValue is strconv.ParseUint(string(raw), 10, 64) without copying raw
// when it is short enough that it cannot overflow.
func uintValue(raw []byte) (uint64, error) {
	if len(raw) == 0 || len(raw) > 19 {
		return strconv.ParseUint(string(raw), 10, 64)
	}
	var n uint64
	for _, c := range raw {
		if !isDigit(c) {
			return strconv.ParseUint(string(raw), 10, 64)
		}
		n = n*10 + uint64(c-'0')
	}
	return n, nil
}

// timeValue is time.Parse(time.RFC3339Nano, string(b)). The form every
// source writes, UTC with a "Z" and up to nine digits of fraction, is read
// in place; anything else goes to time.Parse.
func timeValue(b []byte) (time.Time, error) {
	if t, ok := utcTime(b); ok {
		return t, nil
	}
	return time.Parse(time.RFC3339Nano, string(b))
}

// utcTime reads 2006-01-02T15:04:05[.999999999]Z; ok is false for any
// other form and for a date or time out of range, which time.Parse then
// judges.
func utcTime(b []byte) (t time.Time, ok bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[len(b)-1] != 'Z' {
		return t, false
	}
	ok = true
	num := func(from, to int) int {
		n := 0
		for _, c := range b[from:to] {
			ok = ok && isDigit(c)
			n = n*10 + int(c-'0')
		}
		return n
	}
	year, month, day := num(0, 4), num(5, 7), num(8, 10)
	hour, minute, sec := num(11, 13), num(14, 16), num(17, 19)
	nsec := 0
	if frac := b[19 : len(b)-1]; len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return t, false
		}
		nsec = num(20, len(b)-1)
		for range 10 - len(frac) {
			nsec *= 10
		}
	}
	if !ok || month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) || hour > 23 || minute > 59 || sec > 59 {
		return t, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}

func daysIn(m time.Month, year int) int {
	switch m {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
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
	s, err := stringValue(raw, escaped)
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

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
