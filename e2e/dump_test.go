package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// dumpStream writes every message of the test's event stream (sequence,
// subject, message id, the start of the data) to
// $REPORTES_E2E_LOGS/<test>.stream.log, for reading a failure afterwards.
func (e *env) dumpStream() {
	dir := os.Getenv("REPORTES_E2E_LOGS")
	if dir == "" {
		return
	}
	if err := e.writeStream(filepath.Join(dir, strings.ReplaceAll(e.t.Name(), "/", "_")+".stream.log")); err != nil {
		e.t.Logf("dump the stream: %v", err)
	}
}

func (e *env) writeStream(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := nats.Connect(e.vars["NATS_URL"])
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	c, err := js.OrderedConsumer(ctx, e.vars["NATS_STREAM"], jetstream.OrderedConsumerConfig{})
	if err != nil {
		return err
	}
	var b strings.Builder
	for {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, _ := m.Metadata()
			fmt.Fprintf(&b, "%d %s %s %.300s\n", md.Sequence.Stream, m.Subject(), m.Headers().Get(jetstream.MsgIDHeader), m.Data())
		}
		if n == 0 {
			break
		}
	}
	rows, err := e.pg.Query(ctx, `SELECT to_jsonb(e)::text FROM empleados e ORDER BY 1`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var row string
		if err := rows.Scan(&row); err != nil {
			return err
		}
		fmt.Fprintf(&b, "empleados %s\n", row)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}
