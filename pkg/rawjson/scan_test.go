package rawjson

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// TestSpecials checks that the eight-bytes-at-a-time test of skipString
// finds the same first special byte as the byte-by-byte definition: every byte value in every position of an
// otherwise plain word, and random words.
func TestSpecials(t *testing.T) {
	isSpecial := func(c byte) bool { return c == '"' || c == '\\' || c < 0x20 }
	check := func(w [8]byte) {
		first := 8
		for i, c := range w {
			if isSpecial(c) {
				first = i
				break
			}
		}
		m := specials(binary.LittleEndian.Uint64(w[:]))
		if got := bits.TrailingZeros64(m) >> 3; got != first {
			t.Fatalf("first special byte of %q: %d, want %d", w[:], got, first)
		}
	}
	for pos := range 8 {
		for c := range 256 {
			for _, fill := range []byte{'a', 0x7f, 0x80, 0xff, '!', '#', '[', ']'} {
				var w [8]byte
				for i := range w {
					w[i] = fill
				}
				w[pos] = byte(c)
				check(w)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1_000_000 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], r.Uint64())
		check(w)
	}
}

// FuzzTimeValue: reading a commit time in place (Time) agrees with time.Parse on
// every input, in value, location and whether it is an error.
func FuzzTimeValue(f *testing.F) {
	for _, s := range []string{"2026-11-27T00:00:00Z", "2024-02-29T23:59:59.123456789Z", "2023-02-29T00:00:00Z",
		"2026-11-27T00:00:00.Z", "2026-11-27T00:00:00.1234567891Z", "2026-11-27T00:00:60Z", "2026-11-27T24:00:00Z",
		"2026-11-27T10:00:00+01:00", "2026-13-01T00:00:00Z", "0000-01-01T00:00:00Z", "2026-11-27t00:00:00z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Time([]byte(s))
		want, wantErr := time.Parse(time.RFC3339Nano, s)
		if (err == nil) != (wantErr == nil) || !got.Equal(want) || got.Location().String() != want.Location().String() {
			t.Fatalf("Time(%q) = %v, %v; time.Parse: %v, %v", s, got, err, want, wantErr)
		}
	})
}

// FuzzUintValue: reading a version in place (Uint) agrees with strconv.ParseUint.
func FuzzUintValue(f *testing.F) {
	for _, s := range []string{"0", "42", "18446744073709551615", "18446744073709551616", "9999999999999999999", "-1", "1.5", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Uint([]byte(s))
		want, wantErr := strconv.ParseUint(s, 10, 64)
		if (err == nil) != (wantErr == nil) || got != want {
			t.Fatalf("Uint(%q) = %d, %v; strconv.ParseUint: %d, %v", s, got, err, want, wantErr)
		}
	})
}
