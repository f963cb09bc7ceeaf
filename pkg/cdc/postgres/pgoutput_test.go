package postgres

import (
	"bytes"
	"testing"

	"github.com/jackc/pglogrepl"
)

// pgoutputSamples are well-formed messages of every kind the source
// decodes itself.
func pgoutputSamples() [][]byte {
	row := func(kind byte, cols ...[]byte) []byte {
		return pgoutput(kind, append([][]byte{u16(uint16(len(cols)))}, cols...)...)
	}
	key, full := row('K', text("S-1"), []byte{'n'}), row('O', text("S-1"), text(""))
	return [][]byte{
		pgoutput('B', u64(0x16B3F48), u64(817_000_000_123_456), u32(731)),
		pgoutput('C', []byte{0}, u64(0x16B3F00), u64(0x16B3F48), u64(817_000_000_123_456)),
		pgoutput('I', u32(16384), row('N', text("S-1"), text("Ana"), []byte{'n'}, text("t"))),
		pgoutput('U', u32(16384), row('N', text("S-1"), []byte{'u'})),
		pgoutput('U', u32(16384), key, row('N', text("S-2"), text("x"))),
		pgoutput('U', u32(16384), full, row('N', text("S-1"), text("y"))),
		pgoutput('D', u32(16384), key),
		pgoutput('D', u32(16384), full),
		pgoutput('I', u32(7), row('N', pgoutput('b', u32(3), []byte{0, 1, 2}))),
	}
}

func TestPgoutputSamples(t *testing.T) {
	for _, msg := range pgoutputSamples() {
		if !samePgoutput(t, msg) {
			t.Errorf("%q: not decoded", msg)
		}
	}
}

// FuzzPgoutput: decoding never panics, and whatever it decodes, pglogrepl
// decodes the same way.
func FuzzPgoutput(f *testing.F) {
	for _, msg := range pgoutputSamples() {
		f.Add(msg)
		f.Add(msg[:len(msg)-1])
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		samePgoutput(t, msg)
	})
}

// samePgoutput decodes msg (a BEGIN, COMMIT, INSERT, UPDATE or DELETE) and,
// when that succeeds, fails t unless pglogrepl decodes it alike. It reports
// whether msg was decoded.
func samePgoutput(t *testing.T, msg []byte) bool {
	t.Helper()
	if len(msg) == 0 {
		return false
	}
	var (
		got  any
		err  error
		want pglogrepl.Message
	)
	switch msg[0] {
	case 'B':
		got, err = parseBegin(msg)
	case 'C':
		got, err = parseCommit(msg)
	case 'I', 'U', 'D':
		var m dml
		err = parseDML(msg, &m)
		got = m
	default:
		return false
	}
	if err != nil {
		return false
	}
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("%q decoded as %+v, but pglogrepl panics: %v", msg, got, r)
			}
		}()
		want, err = pglogrepl.Parse(msg)
	}()
	if err != nil {
		t.Fatalf("%q decoded as %+v, but pglogrepl fails: %v", msg, got, err)
	}
	same := false
	switch w := want.(type) {
	case *pglogrepl.BeginMessage:
		g := got.(begin) //nolint:forcetypeassert // by msg[0]
		same = g.finalLSN == w.FinalLSN && g.commitTime.Equal(w.CommitTime)
	case *pglogrepl.CommitMessage:
		g := got.(commit) //nolint:forcetypeassert // by msg[0]
		same = g.endLSN == w.TransactionEndLSN && g.commitTime.Equal(w.CommitTime)
	case *pglogrepl.InsertMessage:
		g := got.(dml) //nolint:forcetypeassert // by msg[0]
		same = g.relID == w.RelationID && g.oldType == 0 && sameTuple(g.new, w.Tuple)
	case *pglogrepl.UpdateMessage:
		g := got.(dml) //nolint:forcetypeassert // by msg[0]
		same = g.relID == w.RelationID && g.oldType == w.OldTupleType && sameTuple(g.new, w.NewTuple) &&
			(g.oldType == 0 || sameTuple(g.old, w.OldTuple))
	case *pglogrepl.DeleteMessage:
		g := got.(dml) //nolint:forcetypeassert // by msg[0]
		same = g.relID == w.RelationID && g.oldType == w.OldTupleType && sameTuple(g.old, w.OldTuple)
	}
	if !same {
		t.Fatalf("%q decoded as %+v, pglogrepl decodes %+v", msg, got, want)
	}
	return true
}

func sameTuple(got []tupleCol, want *pglogrepl.TupleData) bool {
	if want == nil || len(got) != len(want.Columns) {
		return false
	}
	for i, c := range want.Columns {
		if got[i].kind != c.DataType || !bytes.Equal(got[i].data, c.Data) || (got[i].data == nil) != (c.Data == nil) {
			return false
		}
	}
	return true
}

func TestAppendLSN(t *testing.T) {
	for _, lsn := range []pglogrepl.LSN{0, 1, 0x16B3F48, 0xA_0000_0000, 0x1_0000_000F, 1<<64 - 1} {
		if got, want := string(appendLSN([]byte("x"), lsn)), "x"+lsn.String(); got != want {
			t.Errorf("appendLSN(%d) = %q, want %q", uint64(lsn), got, want)
		}
	}
}
