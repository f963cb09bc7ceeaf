package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/reportes/reportes/internal/devstack"
)

// ingestorProc is the real ingestor binary, run as users run it.
type ingestorProc struct {
	cmd  *exec.Cmd
	name string
	url  string
}

// startIngestor runs the ingestor binary on the bench database's employees
// table and the MongoDB collection coll (oplog mode) of the server at
// mongoURI, publishing under the subject prefix name to stream, with a
// slot, publication and checkpoint bucket of its own. With wait, it returns
// once both sources stream.
func (e *benchEnv) startIngestor(ctx context.Context, name, mongoURI, coll, stream string, wait bool, env ...string) (*ingestorProc, error) {
	if _, err := e.conn.Exec(ctx, devstack.EmployeesDDL); err != nil {
		return nil, err
	}
	port, err := devstack.FreePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(e.o.ingestorBin) //nolint:gosec,noctx // the binary under test
	cmd.Env = append(os.Environ(), "POSTGRES_URL="+e.pgURL, "PG_SLOT="+name, "PG_PUBLICATION="+name,
		"MONGO_URI="+mongoURI, "MONGO_DB=bench", "MONGO_COLLECTION="+coll, "MONGO_CAPTURE_MODE=oplog",
		"NATS_URL="+e.nats.url, "NATS_STREAM="+stream, "NATS_SUBJECT_PREFIX="+name, "NATS_CHECKPOINT_BUCKET=P_"+name,
		"INGESTOR_PORT="+strconv.Itoa(port), "LOG_LEVEL=warn")
	cmd.Env = append(cmd.Env, env...) // the last value of a variable wins
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (make build first): %w", e.o.ingestorBin, err)
	}
	p := &ingestorProc{cmd: cmd, name: name, url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	if !wait {
		return p, nil
	}
	if err := waitReady(p.url, 10*time.Millisecond, 2*time.Minute); err != nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		return nil, fmt.Errorf("ingestor: %w", err)
	}
	return p, nil
}

// metric returns the value of the unlabelled metric name on the ingestor's
// /metrics.
func (p *ingestorProc) metric(name string) (float64, error) {
	resp, err := http.Get(p.url + "/metrics") //nolint:gosec,noctx // loopback
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("ingestor /metrics has no %s", name)
}

// stop stops the ingestor with SIGTERM, as an orchestrator does, so it
// flushes what it read and saves its positions.
func (p *ingestorProc) stop() error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	return p.cmd.Wait()
}

// dropCapture removes a run's replication slot, publication and checkpoint
// bucket, so that runs do not leave work for the servers of the next ones.
func (e *benchEnv) dropCapture(ctx context.Context, name string) {
	_, _ = e.conn.Exec(ctx, "SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1", name)
	_, _ = e.conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+name)
	_ = e.js.DeleteKeyValue(ctx, "P_"+name)
}
