package cdc

import (
	"encoding/hex"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nats-io/nats-server/v2/server"
)

func TestEventSubject(t *testing.T) {
	long := strings.Repeat("k", 200)
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{"objectid", Event{Source: "mongo", Collection: "inventory_db.orders", Op: OpUpdate, Key: "6b0a0d043c5e6b4ddcd50494"},
			"reportes.cdc.mongo.inventory_db.orders.6b0a0d043c5e6b4ddcd50494"},
		{"reserved", Event{Source: "postgres", Collection: "public.empleados", Op: OpInsert, Key: "S.01 *>%~"},
			"reportes.cdc.postgres.public.empleados.S%2E01%20%2A%3E%25%7E"},
		{"composite", Event{Source: "postgres", Collection: "public.t", Op: OpDelete, Key: `["a",null]`},
			`reportes.cdc.postgres.public.t.["a",null]`},
		{"unicode", Event{Source: "mongo", Collection: "db.c", Op: OpSnapshot, Key: "ñandú\u00a0x"},
			"reportes.cdc.mongo.db.c.ñandú%C2%A0x"},
		{"invalid utf-8", Event{Source: "mongo", Collection: "db.c", Op: OpInsert, Key: "a\xffb"},
			"reportes.cdc.mongo.db.c.a%FFb"},
		{"empty key", Event{Source: "mongo", Collection: "db.c", Op: OpInsert, Key: ""}, "reportes.cdc.mongo.db.c.~"},
		{"long key", Event{Source: "mongo", Collection: "db.c", Op: OpInsert, Key: long}, "reportes.cdc.mongo.db.c." + Bound(long)},
		{"begin", Event{Source: "postgres", Collection: "public.empleados", Op: OpSnapshotBegin, Snapshot: "reportes@0/1947BB8"},
			"reportes.cdc.postgres.public.empleados.~snapshot_begin.reportes"},
		{"end", Event{Source: "postgres", Collection: "public.empleados", Op: OpSnapshotEnd, Snapshot: "reportes@0/1947BB8"},
			"reportes.cdc.postgres.public.empleados.~snapshot_end.reportes"},
		{"truncate", Event{Source: "postgres", Collection: "public.empleados", Op: OpSnapshotEnd, Snapshot: "truncate:public.empleados@0/1A"},
			"reportes.cdc.postgres.public.empleados.~snapshot_end.truncate:public%2Eempleados"},
		{"mongo marker", Event{Source: "mongo", Collection: "inventory_db.orders", Op: OpSnapshotBegin, Snapshot: "inventory_db.orders@1795820804.13"},
			"reportes.cdc.mongo.inventory_db.orders.~snapshot_begin.inventory_db%2Eorders"},
	}
	for _, tt := range tests {
		got := Subject(DefaultSubjectPrefix, &tt.ev)
		if got != tt.want {
			t.Errorf("%s: Subject = %q, want %q", tt.name, got, tt.want)
		}
		if !server.IsValidPublishSubject(got) {
			t.Errorf("%s: %q is no valid subject", tt.name, got)
		}
	}
	if got := Subject(DefaultSubjectPrefix, &Event{Source: "mongo", Collection: "db.c", Op: OpInsert, Key: long}); len(got) > len("reportes.cdc.mongo.db.c.")+MaxTokenBytes {
		t.Errorf("long key: subject of %d bytes", len(got))
	}
}

// unescapeKeyToken inverts KeyToken for a token that was not bounded.
func unescapeKeyToken(t *testing.T, tok string) string {
	t.Helper()
	if tok == "~" {
		return ""
	}
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		if tok[i] != '%' {
			b.WriteByte(tok[i])
			continue
		}
		if i+3 > len(tok) {
			t.Fatalf("token %q: a truncated escape", tok)
		}
		x, err := hex.DecodeString(tok[i+1 : i+3])
		if err != nil {
			t.Fatalf("token %q: %v", tok, err)
		}
		b.Write(x)
		i += 2
	}
	return b.String()
}

// FuzzKeyToken: the token of a key is one valid, bounded subject token
// that tells it apart from every other key: an escaped token decodes back
// to the key, so two keys of escaped tokens never meet; a bounded token
// (over MaxTokenBytes escaped) holds "~" then 32 hex digits, which no
// escaped token holds, and differs from another bounded one unless 128 bits
// of SHA-256 collide; and no key takes the empty key's token nor a marker's.
func FuzzKeyToken(f *testing.F) {
	for _, s := range []string{"", "~", "%", "%7E", "a.b", "*", ">", " ", "\x00", "\xff", "ñ", strings.Repeat("x", 64),
		strings.Repeat("x", 65), strings.Repeat("%", 30), "~snapshot_begin", `["a",null]`} {
		f.Add(s, s+"x")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ta, tb := KeyToken(a), KeyToken(b)
		for _, tok := range []string{ta, tb} {
			if tok == "" || len(tok) > MaxTokenBytes || strings.ContainsAny(tok, ".*> \t\r\n") || !utf8.ValidString(tok) {
				t.Fatalf("token %q", tok)
			}
			if subj := "reportes.cdc.mongo.db.c." + tok; !server.IsValidPublishSubject(subj) {
				t.Fatalf("subject %q is not valid", subj)
			}
		}
		if (a == b) != (ta == tb) {
			t.Fatalf("KeyToken(%q) = %q, KeyToken(%q) = %q", a, ta, b, tb)
		}
		for key, tok := range map[string]string{a: ta, b: tb} {
			i := strings.IndexByte(tok, '~')
			switch {
			case key == "":
				if tok != "~" {
					t.Fatalf("empty key: %q", tok)
				}
			case i < 0:
				if got := unescapeKeyToken(t, tok); got != key {
					t.Fatalf("token %q of %q decodes to %q", tok, key, got)
				}
			case i == 0 || len(tok)-i != 33 || strings.Trim(tok[i+1:], "0123456789abcdef") != "":
				t.Fatalf("token %q of %q is neither escaped nor bounded", tok, key)
			}
		}
	})
}

func TestSnapshotSeries(t *testing.T) {
	for name, want := range map[string]string{
		"reportes@0/1947BB8":                 "reportes",
		"truncate:public.empleados@0/1A2B3C": "truncate:public.empleados",
		"truncate:public.\"a@b\"@0/1":        "truncate:public.\"a@b\"",
		"plain":                              "plain",
	} {
		if got := SnapshotSeries(name); got != want {
			t.Errorf("SnapshotSeries(%q) = %q, want %q", name, got, want)
		}
	}
}
