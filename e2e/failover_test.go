package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/reportes/reportes/internal/devstack"
)

// TestIngestorFailover: two ingestors with the same configuration, one
// capturing each source and the other standing by, under the mixed
// workload on both sources; the leader is SIGKILLed three times
// (alternating, since the killed one comes back as the standby): the
// standby takes over from the last acknowledged positions, and the
// dashboard equals the recount. The takeover times are printed.
func TestIngestorFailover(t *testing.T) {
	t.Parallel() // an isolated deployment: its own database, FerretDB, stream and ports
	e := newEnv(t)
	ports, err := devstack.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	ingestors := map[string]string{"ingestor-a": strconv.Itoa(ports[0]), "ingestor-b": strconv.Itoa(ports[1])}
	start := func(n string) { e.startAs(n, "ingestor", map[string]string{"INGESTOR_PORT": ingestors[n]}) }
	w := newWorkload(e, 4)
	for range 10 {
		w.hire(t)
	}
	w.orders(t, 200)
	start("ingestor-a")
	e.leads(ingestors["ingestor-a"], 60*time.Second) // a takes both leases first
	start("ingestor-b")
	e.start("api")
	e.converges(60 * time.Second)

	leader, standby := "ingestor-a", "ingestor-b"
	var took []time.Duration
	for i := range 240 * chaos() {
		w.step(t)
		if i%80 != 40 {
			continue
		}
		e.kill(leader, syscall.SIGKILL)
		killed := time.Now()
		e.leads(ingestors[standby], 60*time.Second)
		took = append(took, time.Since(killed))
		start(leader) // back as the standby
		leader, standby = standby, leader
	}
	e.converges(90 * time.Second)
	t.Logf("takeover after the leader's SIGKILL (both sources streaming on the standby): %v", took)
}

// leads waits until the ingestor on port leads both sources and streams.
func (e *env) leads(port string, timeout time.Duration) {
	e.t.Helper()
	devstack.Eventually(e.t, timeout, func() (bool, string) {
		resp, err := http.Get("http://127.0.0.1:" + port + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var st struct {
			Status  string            `json:"status"`
			Sources map[string]string `json:"sources"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return false, err.Error()
		}
		leads := st.Sources["postgres"] == "leader" && st.Sources["mongo"] == "leader"
		return resp.StatusCode == http.StatusOK && leads, fmt.Sprintf("%d %s %v", resp.StatusCode, st.Status, st.Sources)
	})
}
