package cdc

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"testing"
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
