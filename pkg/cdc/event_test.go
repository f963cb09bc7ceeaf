package cdc

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/reportes/reportes/pkg/rawjson"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name, data, wantErr string
	}{
		{"insert", `{"id":"pg:s:0/1:1","source":"postgres","collection":"public.empleados","op":"insert","key":"S-01","position":"0/1","version":1,"commit_time":"2026-01-02T03:04:05Z","after":{"codigo":"S-01"}}`, ""},
		{"snapshot marker", `{"id":"m","source":"mongo","collection":"db.c","op":"snapshot_begin","snapshot":"db.c@1.2"}`, ""},
		{"not json", `{"id":`, "invalid event"},
		{"missing id", `{"source":"mongo","collection":"db.c","op":"insert","key":"k"}`, "missing id"},
		{"missing source", `{"id":"x","collection":"db.c","op":"insert","key":"k"}`, "missing source"},
		{"missing collection", `{"id":"x","source":"mongo","op":"insert","key":"k"}`, "missing collection"},
		{"unknown op", `{"id":"x","source":"mongo","collection":"db.c","op":"upsert","key":"k"}`, `unknown op "upsert"`},
		{"change without key", `{"id":"x","source":"mongo","collection":"db.c","op":"delete"}`, "delete without key"},
		{"marker without snapshot", `{"id":"x","source":"mongo","collection":"db.c","op":"snapshot_end"}`, "without snapshot id"},
		{"unknown fields are allowed", `{"id":"x","source":"mongo","collection":"db.c","op":"insert","key":"k","future":1}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev Event
			err := Decode([]byte(tt.data), &ev)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("Decode error = %v, want one containing %q wrapping ErrInvalidEvent", err, tt.wantErr)
			}
		})
	}
}

// TestDecodeAllocations: decoding an order event allocates its id, key and
// position and nothing else; the collection's name is allocated once, the
// first time it is seen, and the commit time and version are read in place.
func TestDecodeAllocations(t *testing.T) {
	data := []byte(`{"id":"mongo:inventory_db.orders:7.1:0","source":"mongo","collection":"inventory_db.orders","op":"insert",` +
		`"key":"0123456789abcdef01234567","position":"7.1","version":7,"commit_time":"2026-11-27T10:11:12.123456Z",` +
		`"after":{"_id":{"$oid":"0123456789abcdef01234567"},"vendedor":"S-0001"}}`)
	var ev Event
	if err := Decode(data, &ev); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() { _ = Decode(data, &ev) })
	if allocs != 3 {
		t.Errorf("Decode allocates %v times per event, want 3 (id, key, position)", allocs)
	}
	if want := time.Date(2026, 11, 27, 10, 11, 12, 123456000, time.UTC); ev.Collection != "inventory_db.orders" || ev.Version != 7 || !ev.CommitTime.Equal(want) {
		t.Errorf("decoded %+v", ev)
	}
}

// TestDecodeInvalidUTF8: bytes that are not UTF-8 become U+FFFD, one each,
// as encoding/json decodes them, whether or not the string has escapes.
func TestDecodeInvalidUTF8(t *testing.T) {
	for key, want := range map[string]string{
		"k\x8a\xffz":    "k\ufffd\ufffdz",
		"k\x8a\xffz\\n": "k\ufffd\ufffdz\n",
		"k\u00e9":       "k\u00e9",
	} {
		var ev Event
		if err := Decode([]byte(`{"id":"x","source":"mongo","collection":"db.c","op":"insert","key":"`+key+`"}`), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Key != want {
			t.Errorf("key %q decoded as %q, want %q", key, ev.Key, want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	in := Event{ID: "id", Source: SourceMongo, Collection: "db.c", Op: OpUpdate, Key: "k", Position: "1.2", Version: 42,
		CommitTime: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), After: json.RawMessage(`{"a":1}`), Before: json.RawMessage(`{"_id":"k"}`)}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Event
	if err := Decode(data, &out); err != nil {
		t.Fatal(err)
	}
	if string(out.After) != string(in.After) || out.Version != 42 || !out.CommitTime.Equal(in.CommitTime) || out.Key != "k" {
		t.Fatalf("round trip: %+v", out)
	}
}

func TestCollectionSubject(t *testing.T) {
	tests := []struct{ prefix, source, coll, want string }{
		{"reportes.cdc", "postgres", "public.empleados", "reportes.cdc.postgres.public.empleados"},
		{"reportes.cdc", "mongo", "inventory_db.my orders*>", "reportes.cdc.mongo.inventory_db.my_orders__"},
		{"p", "mongo", "", "p.mongo._"},
	}
	for _, tt := range tests {
		if got := CollectionSubject(tt.prefix, tt.source, tt.coll); got != tt.want {
			t.Errorf("CollectionSubject(%q,%q,%q) = %q, want %q", tt.prefix, tt.source, tt.coll, got, tt.want)
		}
	}
	if got := SubjectToken("S.01 x", false); got != "S_01_x" {
		t.Errorf("SubjectToken = %q", got)
	}
}

// FuzzDecodeEvent: decoding arbitrary bytes never panics, and whatever it
// accepts is valid and survives a round trip.
func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"id":"a","source":"mongo","collection":"db.c","op":"insert","key":"k","after":{"vendedor":"S-01"}}`))
	f.Add([]byte(`{"id":"a","source":"postgres","collection":"public.e","op":"snapshot_begin","snapshot":"s@0/1"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev Event
		if err := Decode(data, &ev); err != nil {
			return
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("accepted an invalid event: %v", err)
		}
		for _, raw := range []json.RawMessage{ev.After, ev.Before} {
			if len(raw) > 0 && !json.Valid(raw) {
				t.Fatalf("accepted invalid JSON in after/before: %q", raw)
			}
		}
		again, err := json.Marshal(ev)
		if err != nil {
			// Only a commit_time whose UTC year leaves [0,9999] (an offset
			// pushing 9999-12-31 over) cannot be re-encoded.
			if y := ev.CommitTime.Year(); y >= 0 && y <= 9999 {
				t.Fatalf("re-encode: %v", err)
			}
			return
		}
		var ev2 Event
		if err := Decode(again, &ev2); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

// FuzzAppendJSON holds AppendJSON to encoding/json's output.
func FuzzAppendJSON(f *testing.F) {
	f.Add("pg:s:0/1:1", "public.empleados", "S-01", "<&>\u2028\"\\\x01\xff", uint64(7), int64(1700000000123456789), []byte(`{"a":1}`), true)
	f.Add("", "", "", "", uint64(0), int64(0), []byte(nil), false)
	f.Fuzz(func(t *testing.T, id, coll, key, snap string, version uint64, nanos int64, after []byte, truncated bool) {
		ev := Event{ID: id, Source: SourceMongo, Collection: coll, Op: OpInsert, Key: key, Position: "1.2", Version: version,
			CommitTime: time.Unix(0, nanos%(1<<62)).UTC(), Snapshot: snap, Truncated: truncated}
		if json.Valid(after) {
			var c bytes.Buffer
			if json.Compact(&c, after) == nil {
				ev.After = c.Bytes()
			}
		}
		want, err := json.Marshal(&ev)
		if err != nil {
			return
		}
		got := ev.AppendJSON(nil)
		if b, s := rawjson.AppendString(nil, []byte(key)), rawjson.AppendString(nil, key); !bytes.Equal(b, s) {
			t.Fatalf("AppendString of %q: from bytes %s, from a string %s", key, b, s)
		}
		if len(ev.After) == 0 {
			if !bytes.Equal(got, want) {
				t.Fatalf("AppendJSON:\n got %s\nwant %s", got, want)
			}
			return
		}
		// After is embedded as given; encoding/json would also HTML-escape
		// it, so compare meaning there.
		if !json.Valid(got) || !sameJSON(got, want) {
			t.Fatalf("AppendJSON:\n got %s\nwant %s", got, want)
		}
	})
}

// FuzzDecoders: the one-pass decoder agrees with the tree-based one on
// every input either accepts.
func FuzzDecoders(f *testing.F) {
	f.Add([]byte(`{"id":"a","source":"mongo","collection":"db.c","op":"insert","key":"k\u00e9","version":3,"commit_time":"2026-01-02T03:04:05.5Z","after":{"vendedor":"S-01","x":[1,{"y":null}]},"truncated":false}`))
	f.Add([]byte(` { "id" : "a\"b" , "source":"postgres","collection":"p.t","op":"snapshot_end","snapshot":"s","before":null } `))
	f.Add([]byte(`{"id":"a","source":"mongo","collection":"db.c","op":"delete","key":"k","after":{"a":1e5,"b":-0.5}}`))
	f.Add([]byte(`{"id":"a","source":"mongo","collection":"db.c","op":"insert","key":"k","after":{"a":"\q","\u00e9":"\u12"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast, tree Event
		errFast := Decode(data, &fast)
		errTree := decodeTree(data, &tree)
		if errFast != nil {
			return // the fast decoder may be stricter
		}
		if errTree != nil {
			t.Fatalf("fast decoder accepted what the tree decoder refuses (%v): %q", errTree, data)
		}
		if fast.ID != tree.ID || fast.Key != tree.Key || fast.Op != tree.Op || fast.Version != tree.Version ||
			!fast.CommitTime.Equal(tree.CommitTime) || fast.Truncated != tree.Truncated || fast.Collection != tree.Collection {
			t.Fatalf("decoders disagree on %q:\nfast %+v\ntree %+v", data, fast, tree)
		}
		for _, pair := range [][2][]byte{{fast.After, tree.After}, {fast.Before, tree.Before}} {
			if (len(pair[0]) == 0) != (len(pair[1]) == 0) {
				t.Fatalf("after/before presence differs on %q", data)
			}
			if len(pair[0]) > 0 && !sameJSON(pair[0], pair[1]) {
				t.Fatalf("after/before differ on %q: %s vs %s", data, pair[0], pair[1])
			}
		}
	})
}

// sameJSON reports whether two JSON texts mean the same, numbers compared
// as written (no float64 overflow or rounding).
func sameJSON(a, b []byte) bool {
	decode := func(data []byte) (any, bool) {
		d := json.NewDecoder(bytes.NewReader(data))
		d.UseNumber()
		var v any
		return v, d.Decode(&v) == nil
	}
	va, okA := decode(a)
	vb, okB := decode(b)
	return okA && okB && reflect.DeepEqual(va, vb)
}
