package postgres

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/reportes/reportes/internal/cdctest"
	"github.com/reportes/reportes/pkg/stream"
)

// BenchmarkOneRowTransactions streams one-row insert transactions (BEGIN,
// INSERT and COMMIT messages of pgoutput, as the walsender sends them)
// through the source's message handling into a Publisher on the test NATS
// server, which runs in this process: its work is counted too.
func BenchmarkOneRowTransactions(b *testing.B) {
	s := cdctest.New(b)
	pub, err := stream.NewPublisher(s.NC, stream.WithSubjectPrefix(s.Prefix))
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	src, err := New(Config{ConnString: "postgres://bench", Tables: []string{"public.empleados"}, Slot: "bench"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	st := newStreamer(src, pub, nil)
	ctx := context.Background()
	rel := pgoutput('R', u32(16384), cstr("public"), cstr("empleados"), []byte{'d'}, u16(4),
		[]byte{1}, cstr("codigo"), u32(pgtype.TextOID), u32(0xffffffff),
		[]byte{0}, cstr("nombre"), u32(pgtype.TextOID), u32(0xffffffff),
		[]byte{0}, cstr("rol"), u32(pgtype.TextOID), u32(0xffffffff),
		[]byte{0}, cstr("activo"), u32(pgtype.BoolOID), u32(0xffffffff))
	if err := st.copyData(ctx, nil, xlogData(0, rel)); err != nil {
		b.Fatal(err)
	}
	// The messages are built once and given each transaction's LSNs in
	// place: what is measured is the source's work alone.
	const hdr = 25 // XLogData: 'w', WAL start, WAL end, send time
	begin := xlogData(0, pgoutput('B', u64(0), u64(0), u32(0)))
	insert := xlogData(0, pgoutput('I', u32(16384), []byte{'N'}, u16(4),
		text("S-0001"), text("Empleado"), text("vendedor"), text("t")))
	commit := xlogData(0, pgoutput('C', []byte{0}, u64(0), u64(0), u64(0)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		lsn := uint64(0x1000000 + 0x100*i)
		binary.BigEndian.PutUint64(begin[hdr+1:], lsn+0x80)
		binary.BigEndian.PutUint64(commit[hdr+2:], lsn+0x40)
		binary.BigEndian.PutUint64(commit[hdr+10:], lsn+0x80)
		for _, m := range [][]byte{begin, insert, commit} {
			if err := st.copyData(ctx, nil, m); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := pub.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}

// xlogData wraps a pgoutput message in the XLogData of a CopyData message.
func xlogData(lsn uint64, msg []byte) []byte {
	return pgoutput(pglogrepl.XLogDataByteID, u64(lsn), u64(lsn), u64(0), msg)
}

func pgoutput(kind byte, parts ...[]byte) []byte {
	out := []byte{kind}
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func u16(v uint16) []byte  { return binary.BigEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte  { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte  { return binary.BigEndian.AppendUint64(nil, v) }
func cstr(s string) []byte { return append([]byte(s), 0) }
func text(s string) []byte { return append(append([]byte{'t'}, u32(uint32(len(s)))...), s...) }
