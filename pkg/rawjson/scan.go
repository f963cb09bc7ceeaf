package rawjson

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/bits"
	"unicode/utf8"
)

// This file is the scanner every reader of the package shares: it skips
// values without building them (FuzzDecoders and FuzzLookup hold it to
// fastjson and encoding/json).
// make bench: BenchmarkDecodeEvent 1.7 µs on a fastjson tree -> 0.45 µs, 3 allocs (bench/results.md, "Rebuild", rounds 2-7).

// ErrSyntax is wrapped by the errors of malformed JSON.
var ErrSyntax = errors.New("malformed JSON")

// MaxDepth bounds how deep the values read may nest.
const MaxDepth = 1000

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
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
			return 0, false, ErrSyntax
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, escaped, nil
		case c == '\\':
			escaped = true
			j++
			if j >= len(b) {
				return 0, false, ErrSyntax
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) {
					return 0, false, ErrSyntax
				}
				for _, h := range b[j+1 : j+5] {
					if !isHex(h) {
						return 0, false, ErrSyntax
					}
				}
				j += 4
			default:
				return 0, false, ErrSyntax
			}
		case c < 0x20:
			return 0, false, ErrSyntax
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
	if depth > MaxDepth || i >= len(b) {
		return 0, ErrSyntax
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
					return 0, ErrSyntax
				}
				if j, _, err = skipString(b, j); err != nil {
					return 0, err
				}
				j = skipSpace(b, j)
				if j >= len(b) || b[j] != ':' {
					return 0, ErrSyntax
				}
				j = skipSpace(b, j+1)
			}
			if j, err = skipValue(b, j, depth+1); err != nil {
				return 0, err
			}
			j = skipSpace(b, j)
			if j >= len(b) {
				return 0, ErrSyntax
			}
			if b[j] == closing {
				return j + 1, nil
			}
			if b[j] != ',' {
				return 0, ErrSyntax
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
	return 0, ErrSyntax
}

// skipNumber returns the index after the JSON number (RFC 8259 section 6)
// starting at b[i]; what follows is the caller's to check.
func skipNumber(b []byte, i int) (int, error) {
	digits := func(j int) (int, error) {
		if j >= len(b) || !isDigit(b[j]) {
			return 0, ErrSyntax
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

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func literal(b []byte, i int, lit string) (int, error) {
	if bytes.HasPrefix(b[i:], []byte(lit)) {
		return i + len(lit), nil
	}
	return 0, ErrSyntax
}

// String decodes raw, a JSON string or null (which is ""), as
// json.Unmarshal would; escaped says whether it holds escapes, as Members
// reports it. Without escapes it copies raw's contents once and does no
// other work.
func String(raw []byte, escaped bool) (string, error) {
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
