package rawjson

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzAppendString holds AppendString to json.Marshal of the same string,
// from a string and from its bytes.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "S-01", "<&>\u2028\u2029\"\\\x01\x7f\xff", "ñandú \t\n\r\b\f", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("AppendString(%q) = %s, json.Marshal %s", s, got, want)
		}
		if got := AppendString([]byte("x"), []byte(s)); !bytes.Equal(got[1:], want) {
			t.Fatalf("AppendString of the bytes of %q = %s, json.Marshal %s", s, got[1:], want)
		}
	})
}
