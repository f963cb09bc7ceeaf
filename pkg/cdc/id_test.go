package cdc

import (
	"strings"
	"testing"
	"unicode"
)

// TestIDs: every kind of id is byte for byte what the sources published
// before they shared Origin; streams deduplicate on these ids.
func TestIDs(t *testing.T) {
	pg, mg := NewOrigin(SourcePostgres, "slot"), NewOrigin(SourceMongo, "db.orders")
	change := func(o Origin, position string, seq int) string {
		id, pos := o.Change([]byte(position), seq)
		if pos != position {
			t.Errorf("Change(%q, %d) position %q", position, seq, pos)
		}
		if want := o.ID(position, strings.TrimPrefix(id, o.prefix+position+":")); id != want {
			t.Errorf("Change(%q, %d) = %q, not ID's %q", position, seq, id, want)
		}
		return id
	}
	for _, tt := range []struct{ got, want string }{
		{change(pg, "AB/1", 3), "pg:slot:AB/1:3"},
		{change(mg, "1790000000.7", 2), "mongo:db.orders:1790000000.7:2"},
		{change(mg, "1790000000.7", 0), "mongo:db.orders:1790000000.7:0"},
		{mg.ID(Bound("826D3A0004")), "mongo:db.orders:826D3A0004"},
		{mg.ID(Bound(strings.Repeat("0", 80))), "mongo:db.orders:0000000000000000000000000000000~4c7f3da0386523b102328418c28d886b"},
		{pg.SnapshotRow("0/16B3748", "public.emp leados", "S-01"), "pg:slot:0/16B3748:public.emp%20leados:S-01"},
		{pg.SnapshotRow("0/16B3748", "public.emp leados", "a b"), "pg:slot:0/16B3748:public.emp%20leados:a%20b"},
		{pg.SnapshotRow("0/16B3748", "public.emp leados", "a:b"), "pg:slot:0/16B3748:public.emp%20leados:a%3Ab"},
		{pg.SnapshotRow("0/16B3748", "public.emp leados", "ñ\n"), "pg:slot:0/16B3748:public.emp%20leados:ñ%0A"},
		{pg.SnapshotRow("0/16B3748", "public.emp leados", "~x"), "pg:slot:0/16B3748:public.emp%20leados:%7Ex"},
		{pg.SnapshotRow("0/16B3748", "public.emp leados", ""), "pg:slot:0/16B3748:public.emp%20leados:"},
		{pg.SnapshotRow("0/16B3748", "public.emp leados", "x~y%z"), "pg:slot:0/16B3748:public.emp%20leados:x%7Ey%25z"},
		{pg.SnapshotMarker("0/16B3748", "public.empleados", OpSnapshotBegin), "pg:slot:0/16B3748:public.empleados:~snapshot_begin"},
		{pg.SnapshotMarker("0/16B3748", "public.empleados", OpSnapshotEnd), "pg:slot:0/16B3748:public.empleados:~snapshot_end"},
		{mg.SnapshotRow("1790000000.7", "db.orders", "65a0"), "mongo:db.orders:snap:1790000000.7:65a0"},
		// A blank is escaped: NATS would trim or merge it (TestMongoSnapshotKeysKeepApart).
		{mg.SnapshotRow("1790000000.7", "db.orders", "a b"), "mongo:db.orders:snap:1790000000.7:a%20b"},
		{mg.SnapshotRow("1790000000.7", "db.orders", "~x"), "mongo:db.orders:snap:1790000000.7:~x~52fa21738cf5adaeb141fed4489e0a78"},
		{mg.SnapshotRow("1790000000.7", "db.orders", strings.Repeat("k", 70)), "mongo:db.orders:snap:1790000000.7:kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk~5c6ced41eb6f5564254b35c889a38b89"},
		{mg.SnapshotMarker("1790000000.7", "db.orders", OpSnapshotBegin), "mongo:db.orders:snapshot_begin:1790000000.7"},
		{pg.SnapshotName("0/16B3748"), "slot@0/16B3748"},
		{mg.SnapshotName("1790000000.7"), "db.orders@1790000000.7"},
	} {
		if tt.got != tt.want {
			t.Errorf("id %q, want %q", tt.got, tt.want)
		}
	}
}

// TestChangeAllocations: the id of a change and its position cost one
// allocation together.
func TestChangeAllocations(t *testing.T) {
	o := NewOrigin(SourceMongo, "inventory_db.orders")
	pos := []byte("1790000000.7")
	if n := testing.AllocsPerRun(100, func() { _, _ = o.Change(pos, 12) }); n != 1 {
		t.Errorf("Change allocates %v times, want 1", n)
	}
}

// TestMongoSnapshotKeysKeepApart: keys that differ only in what a header
// would mangle get distinct ids without blanks; other keys keep the
// layout first published.
func TestMongoSnapshotKeysKeepApart(t *testing.T) {
	o := NewOrigin(SourceMongo, "db.orders")
	seen := map[string]string{}
	for _, key := range []string{"a\nb", "a b", "a\rb", "a\tb", "a%0Ab", "a%20b", " a", "a", "a\u00a0b", "a\xffb", "a:b", "a~b"} {
		id := o.SnapshotRow("1.2", "db.orders", key)
		if other, dup := seen[id]; dup {
			t.Errorf("keys %q and %q share the id %q", key, other, id)
		}
		seen[id] = key
		if strings.ContainsAny(id, " \t\r\n\u00a0") {
			t.Errorf("key %q: id %q holds a blank", key, id)
		}
	}
	if id := o.SnapshotRow("1.2", "db.orders", "665f1c2e9b1e8a0001a1b2c3"); id != "mongo:db.orders:snap:1.2:665f1c2e9b1e8a0001a1b2c3" {
		t.Errorf("an ObjectID key's id changed: %q", id)
	}
}

// FuzzMongoSnapshotID: distinct keys get distinct snapshot ids, none of
// them a marker's, and no id holds a blank or a control character.
func FuzzMongoSnapshotID(f *testing.F) {
	f.Add("a\nb", "a b")
	f.Add("a%0Ab", "a\nb")
	f.Add("", " ")
	f.Add(strings.Repeat("x", 100), strings.Repeat("x", 101))
	f.Add("snapshot_begin", "~")
	o := NewOrigin(SourceMongo, "db.orders")
	markers := map[string]bool{
		o.SnapshotMarker("1.2", "db.orders", OpSnapshotBegin): true,
		o.SnapshotMarker("1.2", "db.orders", OpSnapshotEnd):   true,
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ida, idb := o.SnapshotRow("1.2", "db.orders", a), o.SnapshotRow("1.2", "db.orders", b)
		if (a == b) != (ida == idb) {
			t.Fatalf("keys %q and %q: ids %q and %q", a, b, ida, idb)
		}
		if markers[ida] {
			t.Fatalf("key %q takes a marker's id %q", a, ida)
		}
		for _, r := range ida {
			if r <= ' ' || r == 0x7f || unicode.IsSpace(r) {
				t.Fatalf("key %q: id %q holds %q", a, ida, r)
			}
		}
	})
}
