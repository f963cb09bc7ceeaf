package rawjson

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestLookup(t *testing.T) {
	doc := []byte(` {"_id":{"$oid":"65"},"vendedor":"S-01","meta":{"vendedor":{"codigo":"S-02"},"n":[1,2]},"dup":1,"dup":"last","\u0076x":true} `)
	for _, tc := range []struct {
		path  string
		raw   string
		found int
	}{
		{"vendedor", `"S-01"`, 1},
		{"meta.vendedor.codigo", `"S-02"`, 3},
		{"meta.n", `[1,2]`, 2},
		{"meta.n.x", `[1,2]`, 2},
		{"meta.missing", `{"vendedor":{"codigo":"S-02"},"n":[1,2]}`, 1},
		{"vendedor.x", `"S-01"`, 1},
		{"dup", `"last"`, 1},
		{"vx", `true`, 1},
		{"", strings.TrimSpace(string(doc)), 0},
	} {
		var path []string
		if tc.path != "" {
			path = strings.Split(tc.path, ".")
		}
		raw, found, err := Lookup(doc, path)
		if err != nil || string(raw) != tc.raw || found != tc.found {
			t.Errorf("Lookup(%q) = %s, %d, %v; want %s, %d", tc.path, raw, found, err, tc.raw, tc.found)
		}
	}
	for _, bad := range []string{``, `{`, `{"a":1,}`, `{"a":01}`, `{"a":1} x`, `{"a":"\x"}`, `{"a" 1}`, `[1,]`, `{"a":-}`, `{"a":1.}`, `{"a":1e}`} {
		if _, _, err := Lookup([]byte(bad), []string{"a"}); err == nil {
			t.Errorf("Lookup(%q) accepted invalid JSON", bad)
		}
	}
}

// FuzzLookup: Lookup agrees with encoding/json on validity and finds what
// walking the unmarshalled objects finds.
func FuzzLookup(f *testing.F) {
	f.Add([]byte(`{"a":{"b":"c"},"a":{"b":-1.5e3}}`), "a.b")
	f.Add([]byte(`{"\u0061":[1,{"b":null}],"x":true}`), "a")
	f.Add([]byte(` {"vendedor" : "S-01" } `), "vendedor.codigo")
	f.Fuzz(func(t *testing.T, doc []byte, dotted string) {
		if len(doc) > 1000 || !utf8.Valid(doc) || !utf8.ValidString(dotted) {
			t.Skip() // deeper than the decoder's nesting limit; keys encoding/json rewrites
		}
		var path []string
		if dotted != "" {
			path = strings.Split(dotted, ".")
		}
		raw, found, err := Lookup(doc, path)
		if valid := json.Valid(doc); valid != (err == nil) {
			t.Fatalf("Lookup error %v, json.Valid %v on %q", err, valid, doc)
		}
		if err != nil {
			return
		}
		want, wantFound := bytes.TrimSpace(doc), 0
		for ; wantFound < len(path); wantFound++ {
			var m map[string]json.RawMessage
			if want[0] != '{' || json.Unmarshal(want, &m) != nil {
				break
			}
			v, ok := m[path[wantFound]]
			if !ok {
				break
			}
			want = v
		}
		if found != wantFound || !bytes.Equal(raw, want) {
			t.Fatalf("Lookup(%q, %q) = %s, %d; encoding/json finds %s, %d", doc, path, raw, found, want, wantFound)
		}
	})
}
