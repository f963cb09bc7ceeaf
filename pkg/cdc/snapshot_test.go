package cdc

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// recorder is a Publisher that keeps what it is given.
type recorder struct {
	events  []Event
	flushed int
	err     error
}

func (r *recorder) Publish(_ context.Context, ev *Event) error {
	if r.err != nil {
		return r.err
	}
	r.events = append(r.events, *ev)
	return nil
}
func (r *recorder) AfterAcked(fn func()) error  { fn(); return r.err }
func (r *recorder) Flush(context.Context) error { r.flushed++; return r.err }
func (r *recorder) Err() error                  { return r.err }

func TestSnapshotBracket(t *testing.T) {
	at := Position{Text: "0/16B3748", Version: 0x16B3748, Time: time.Date(2026, 11, 27, 23, 6, 27, 0, time.UTC)}
	for _, tt := range []struct {
		source, name, collection string
		want                     []string // ids
	}{
		{SourcePostgres, "reportes", "public.empleados", []string{
			"pg:reportes:0/16B3748:public.empleados:~snapshot_begin",
			"pg:reportes:0/16B3748:public.empleados:S-01",
			"pg:reportes:0/16B3748:public.empleados:S-02",
			"pg:reportes:0/16B3748:public.empleados:~snapshot_end",
		}},
		{SourceMongo, "db.orders", "db.orders", []string{
			"mongo:db.orders:snapshot_begin:0/16B3748",
			"mongo:db.orders:snap:0/16B3748:S-01",
			"mongo:db.orders:snap:0/16B3748:S-02",
			"mongo:db.orders:snapshot_end:0/16B3748",
		}},
	} {
		var pub recorder
		ctx := context.Background()
		snap := NewSnapshot(&pub, NewOrigin(tt.source, tt.name), at, "initial")
		b, err := snap.Begin(ctx, tt.collection)
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"S-01", "S-02"} {
			if err := b.Row(ctx, key, json.RawMessage(`{"k":"`+key+`"}`)); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.End(ctx); err != nil {
			t.Fatal(err)
		}
		if err := snap.Flush(ctx); err != nil || pub.flushed != 1 || b.Rows() != 2 {
			t.Fatalf("%s: flush %v (%d), rows %d", tt.source, err, pub.flushed, b.Rows())
		}
		if len(pub.events) != len(tt.want) {
			t.Fatalf("%s: %d events, want %d", tt.source, len(pub.events), len(tt.want))
		}
		for i, ev := range pub.events {
			want := []Op{OpSnapshotBegin, OpSnapshot, OpSnapshot, OpSnapshotEnd}[i]
			if ev.ID != tt.want[i] || ev.Op != want || ev.Source != tt.source || ev.Collection != tt.collection ||
				ev.Position != at.Text || ev.Version != at.Version || !ev.CommitTime.Equal(at.Time) || ev.Snapshot != tt.name+"@"+at.Text {
				t.Errorf("%s: event %d %+v, want id %s, op %s at the snapshot's position", tt.source, i, ev, tt.want[i], want)
			}
			if err := ev.Validate(); err != nil {
				t.Errorf("%s: event %d: %v", tt.source, i, err)
			}
		}
	}
}

func TestSnapshotStopsOnPublishFailure(t *testing.T) {
	boom := errors.New("boom")
	pub := recorder{err: boom}
	snap := NewSnapshot(&pub, NewOrigin(SourceMongo, "db.c"), Position{Text: "1.2"}, "initial")
	if _, err := snap.Begin(context.Background(), "db.c"); !errors.Is(err, boom) {
		t.Fatalf("Begin: %v, want the publisher's failure", err)
	}
	if err := snap.Flush(context.Background()); !errors.Is(err, boom) || err.Error() != "publish snapshot: boom" {
		t.Fatalf("Flush: %v", err)
	}
}
