package cdc

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends the JSON encoding of e to buf, without reflection:
// publishing is on the capture hot path. It is byte for byte what
// encoding/json produces, except that After and Before are embedded as given
// where encoding/json would also HTML-escape them (FuzzAppendJSON holds it to
// that).
func (e *Event) AppendJSON(buf []byte) []byte {
	buf = append(buf, `{"id":`...)
	buf = AppendString(buf, e.ID)
	buf = append(buf, `,"source":`...)
	buf = AppendString(buf, e.Source)
	buf = append(buf, `,"collection":`...)
	buf = AppendString(buf, e.Collection)
	buf = append(buf, `,"op":`...)
	buf = AppendString(buf, string(e.Op))
	if e.Key != "" {
		buf = append(buf, `,"key":`...)
		buf = AppendString(buf, e.Key)
	}
	buf = append(buf, `,"position":`...)
	buf = AppendString(buf, e.Position)
	buf = append(buf, `,"version":`...)
	buf = strconv.AppendUint(buf, e.Version, 10)
	buf = append(buf, `,"commit_time":"`...)
	buf = e.CommitTime.AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, '"')
	if e.Snapshot != "" {
		buf = append(buf, `,"snapshot":`...)
		buf = AppendString(buf, e.Snapshot)
	}
	if len(e.After) > 0 {
		buf = append(buf, `,"after":`...)
		buf = append(buf, e.After...)
	}
	if len(e.Before) > 0 {
		buf = append(buf, `,"before":`...)
		buf = append(buf, e.Before...)
	}
	if e.Truncated {
		buf = append(buf, `,"truncated":true`...)
	}
	return append(buf, '}')
}

const hexDigits = "0123456789abcdef"

// AppendString appends s, a string or the bytes of one, as a JSON string,
// escaped like encoding/json does (including its HTML-safe escapes and the
// replacement of invalid UTF-8).
func AppendString[S ~string | ~[]byte](buf []byte, s S) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			case '\b':
				buf = append(buf, '\\', 'b')
			case '\f':
				buf = append(buf, '\\', 'f')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		// A rune is at most 4 bytes; converting that many does not allocate.
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
