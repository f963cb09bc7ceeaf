package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/bson"

	"github.com/reportes/reportes/internal/devstack"
)

// The failover figures' settings: the takeover figure SIGKILLs the ingestor
// capturing PostgreSQL failoverKills times and stops it with SIGTERM
// failoverHandovers times (its same-run reference); the leader-change
// figure times windows of failoverWindow changes, stopping the stream's
// leader after failoverStopAt of them and starting it again once another
// server leads and failoverStartAt were made.
const (
	failoverKills      = 5
	failoverHandovers  = 3
	failoverEvery      = 10 * time.Millisecond // one change of the steady load
	failoverMaxChanges = 200_000               // the load's bound (33 minutes)
	failoverWindow     = 1000
	failoverStopAt     = 200
	failoverStartAt    = 600
)

// failoverFigure measures the ingestor's takeover after a SIGKILL and the
// freshness across a change of the JetStream stream's leader.
func (e *benchEnv) failoverFigure(ctx context.Context, rep *report) error {
	if err := e.takeoverFigure(ctx, rep); err != nil {
		return fmt.Errorf("ingestor takeover: %w", err)
	}
	if err := e.leaderChangeFigure(ctx, rep); err != nil {
		return fmt.Errorf("NATS leader change: %w", err)
	}
	return nil
}

// failoverTTL is the LEASE_TTL the ingestors run with: the bench passes its
// environment on, and sets none itself (the default, 3s).
func failoverTTL() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("LEASE_TTL")); err == nil && d > 0 {
		return d
	}
	return 3 * time.Second
}

// failoverLoad is the steady write load of the failover figures: it sets
// S-0000's role to u1, u2... every failoverEvery on a connection of its
// own, recording when each update was sent and committed, while the
// dashboard is polled every millisecond for the last one it shows.
type failoverLoad struct {
	mu              sync.Mutex
	sent, committed []time.Time // by update, from 1
	err             error
	dash            *watcher
	stop            func()
}

func (e *benchEnv) startFailoverLoad(ctx context.Context, table, dashURL string) (*failoverLoad, error) {
	conn, err := pgx.Connect(ctx, e.pgURL)
	if err != nil {
		return nil, fmt.Errorf("connect the load: %w", err)
	}
	l := &failoverLoad{sent: make([]time.Time, 1), committed: make([]time.Time, 1), dash: newWatcher(failoverMaxChanges)}
	stopPoll := pollRaw(ctx, dashURL, func(b []byte, at time.Time) {
		if k, ok := figureAfter(b, roleKey); ok {
			l.dash.observe(k, at)
		}
	})
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(lctx, conn, table)
	}()
	l.stop = func() {
		cancel()
		<-done
		stopPoll()
		_ = conn.Close(context.WithoutCancel(ctx))
	}
	return l, nil
}

func (l *failoverLoad) run(ctx context.Context, conn *pgx.Conn, table string) {
	update := fmt.Sprintf("UPDATE %s SET rol = $1 WHERE codigo = 'S-0000'", table)
	tick := time.NewTicker(failoverEvery) // the load's pace
	defer tick.Stop()
	for k := 1; k < failoverMaxChanges; k++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		l.mu.Lock()
		l.sent = append(l.sent, time.Now())
		l.mu.Unlock()
		_, err := conn.Exec(ctx, update, "u"+strconv.Itoa(k))
		at := time.Now()
		l.mu.Lock()
		if err != nil {
			l.sent = l.sent[:k]
			if ctx.Err() == nil {
				l.err = fmt.Errorf("update %d: %w", k, err)
			}
			l.mu.Unlock()
			return
		}
		l.committed = append(l.committed, at)
		l.mu.Unlock()
	}
	l.mu.Lock()
	l.err = fmt.Errorf("the load made its %d updates", failoverMaxChanges)
	l.mu.Unlock()
}

// failed is the load's error, if it stopped.
func (l *failoverLoad) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// next is the number of the next update the load will send.
func (l *failoverLoad) next() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sent)
}

// firstSentAfter is the first update sent after t.
func (l *failoverLoad) firstSentAfter(t time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := len(l.sent)
	for k > 1 && l.sent[k-1].After(t) {
		k--
	}
	return k
}

// seenAt is when the dashboard first showed update k (zero: not yet).
func (l *failoverLoad) seenAt(k int) time.Time {
	l.dash.mu.Lock()
	defer l.dash.mu.Unlock()
	return l.dash.seen[k]
}

// waitCommitted waits until update k is committed.
func (l *failoverLoad) waitCommitted(k int, timeout time.Duration) error {
	return poll(timeout, 5*time.Millisecond, func() (bool, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.committed) > k, l.err
	})
}

// waitSeen waits until the dashboard shows update k.
func (l *failoverLoad) waitSeen(k int, timeout time.Duration) error {
	return poll(timeout, 5*time.Millisecond, func() (bool, error) {
		return !l.seenAt(k).IsZero(), l.failed()
	})
}

// latencies are, for the updates from..to-1, the times from their commit
// until the dashboard showed them, and how many it did not show.
func (l *failoverLoad) latencies(from, to int) ([]time.Duration, int) {
	l.mu.Lock()
	committed := l.committed
	l.mu.Unlock()
	var out []time.Duration
	missed := 0
	for k := from; k < to && k < len(committed); k++ {
		if at := l.seenAt(k); !at.IsZero() {
			out = append(out, at.Sub(committed[k]))
		} else {
			missed++
		}
	}
	return out, missed
}

// failoverSources reads an ingestor's /readyz: its status code and what it
// says of each source ("leader", or "standby (captured by ...)").
func failoverSources(base string) (int, map[string]string, error) {
	resp, err := http.Get(base + "/readyz") //nolint:gosec,noctx // loopback
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var st struct {
		Sources map[string]string `json:"sources"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	_, _ = io.Copy(io.Discard, resp.Body) // so that the connection is reused
	if err != nil {
		return 0, nil, fmt.Errorf("%s/readyz: %w", base, err)
	}
	return resp.StatusCode, st.Sources, nil
}

// takeoverRig is the live rig with a second ingestor of the same
// configuration standing by, under the steady load.
type takeoverRig struct {
	rig  *liveRig
	ings [2]*ingestorProc
	load *failoverLoad
}

func (e *benchEnv) startTakeoverRig(ctx context.Context) (t *takeoverRig, err error) {
	t = &takeoverRig{}
	if t.rig, err = e.startRig(ctx, "fover", 1); err != nil {
		return nil, err
	}
	t.ings[0], t.rig.ing = t.rig.ing, nil
	defer func() {
		if err != nil {
			t.stop(ctx, e)
		}
	}()
	if t.ings[1], err = e.startRigIngestor(ctx, t.rig); err != nil {
		return t, err
	}
	if _, err := t.leader(); err != nil {
		return t, err
	}
	t.load, err = e.startFailoverLoad(ctx, t.rig.table, t.rig.api.url+"/reportes/dashboard")
	return t, err
}

func (t *takeoverRig) stop(ctx context.Context, e *benchEnv) {
	if t.load != nil {
		t.load.stop()
	}
	for i, p := range t.ings {
		if p != nil {
			_ = p.stop()
			t.ings[i] = nil
		}
	}
	t.rig.stop(ctx, e)
}

// leader waits until one ingestor captures PostgreSQL, streaming, and the
// other stands by, and returns the first one's index.
func (t *takeoverRig) leader() (int, error) {
	li := -1
	var last string
	err := poll(time.Minute, 10*time.Millisecond, func() (bool, error) {
		li, last = -1, ""
		standby := false
		for i, p := range t.ings {
			code, src, err := failoverSources(p.url)
			if err != nil {
				last += err.Error() + "; "
				continue
			}
			last += fmt.Sprintf("%d %v; ", code, src)
			switch {
			case src["postgres"] == "leader" && code == http.StatusOK:
				li = i
			case strings.HasPrefix(src["postgres"], "standby"):
				standby = true
			}
		}
		return li >= 0 && standby, nil
	})
	if err != nil {
		return -1, fmt.Errorf("no leader and standby (%s): %w", last, err)
	}
	return li, nil
}

// takeover is one takeover: from the signal to the leader until the
// standby reported leader on /readyz, and until the dashboard showed the
// first update sent after the leader's process was gone.
type takeover struct{ leased, visible time.Duration }

// takeoverOnce signals the ingestor capturing PostgreSQL (SIGKILL when
// kill, else SIGTERM), times the takeover, and starts it again as the
// standby.
func (e *benchEnv) takeoverOnce(ctx context.Context, t *takeoverRig, kill bool) (r takeover, err error) {
	li, err := t.leader()
	if err != nil {
		return r, err
	}
	victim, standby := t.ings[li], t.ings[1-li]
	if err := t.load.waitSeen(t.load.next(), 30*time.Second); err != nil {
		return r, fmt.Errorf("the dashboard does not follow the load before the signal: %w", err)
	}
	signalled := time.Now()
	if kill {
		_ = victim.cmd.Process.Kill()
		_ = victim.cmd.Wait()
	} else if err := victim.stop(); err != nil {
		e.logger.Warn("the ingestor stopped with SIGTERM exited with an error", "err", err)
	}
	t.ings[li] = nil
	first := t.load.firstSentAfter(time.Now())
	var leased time.Time
	err = poll(time.Minute, 5*time.Millisecond, func() (bool, error) {
		if leased.IsZero() {
			if _, src, err := failoverSources(standby.url); err == nil && src["postgres"] == "leader" {
				leased = time.Now()
			}
		}
		return !leased.IsZero() && !t.load.seenAt(first).IsZero(), t.load.failed()
	})
	if err != nil {
		return r, fmt.Errorf("takeover (update %d): %w", first, err)
	}
	r = takeover{leased: leased.Sub(signalled), visible: t.load.seenAt(first).Sub(signalled)}
	if t.ings[li], err = e.startRigIngestor(ctx, t.rig); err != nil {
		return r, fmt.Errorf("start the ingestor again: %w", err)
	}
	return r, nil
}

func (e *benchEnv) takeoverFigure(ctx context.Context, rep *report) error {
	t, err := e.startTakeoverRig(ctx)
	if err != nil {
		return err
	}
	defer t.stop(ctx, e)
	var kills, handovers []takeover
	for i := range failoverKills + failoverHandovers {
		kill := i < failoverKills
		r, err := e.takeoverOnce(ctx, t, kill)
		if err != nil {
			return err
		}
		e.logger.Info("ingestor takeover", "sigkill", kill, "standby_leader_ms", msf(r.leased), "dashboard_moved_ms", msf(r.visible))
		if kill {
			kills = append(kills, r)
		} else {
			handovers = append(handovers, r)
		}
	}
	addTakeoverRows(rep, kills, handovers, failoverTTL())
	return nil
}

func addTakeoverRows(rep *report, kills, handovers []takeover, ttl time.Duration) {
	ms := func(rs []takeover, f func(takeover) time.Duration) []float64 {
		out := make([]float64, len(rs))
		for i, r := range rs {
			out[i] = msf(f(r))
		}
		return out
	}
	visible := func(r takeover) time.Duration { return r.visible }
	leased := func(r takeover) time.Duration { return r.leased }
	k, ttlMS := ms(kills, visible), msf(ttl)
	ref := make([]float64, len(k))
	for i := range ref {
		ref[i] = ttlMS
	}
	refName := fmt.Sprintf("LEASE_TTL (%s)", ttl)
	note := fmt.Sprintf("two ingestor processes with the same settings (LEASE_TTL %s), one update of an employee every %s; "+
		"the one capturing PostgreSQL is SIGKILLed %d times, and started again as the standby after each takeover; "+
		"timed from the SIGKILL until GET /reportes/dashboard (polled every millisecond) shows the first update sent after the killed process was reaped; "+
		"the standby reported leader on /readyz after %.0f ms (median); the reference is the lease's TTL, which a takeover cannot beat: the dead holder's key must expire first",
		ttl, failoverEvery, len(kills), summarize(ms(kills, leased)).med)
	rep.add(row{figure: fmt.Sprintf("Ingestor takeover after SIGKILL, median of %d kills (ms)", len(kills)), ours: summarize(k),
		ref: summarize(ref), refName: refName, ratios: ratios(k, ref), unit: "ms", absBar: 5000, barText: "median < 5 s", note: note})
	worst := summarize(k).max
	rep.add(row{figure: fmt.Sprintf("Ingestor takeover after SIGKILL, max of %d kills (ms)", len(kills)), ours: stats{worst, worst, worst},
		ref: stats{ttlMS, ttlMS, ttlMS}, refName: refName, ratios: []float64{worst / ttlMS}, unit: "ms", absBar: 10_000, barText: "max < 10 s"})
	rep.add(row{figure: fmt.Sprintf("Ingestor handover after SIGTERM, %d stops (ms)", len(handovers)), ours: summarize(ms(handovers, visible)), unit: "ms",
		note: "same rig, timed the same way from the SIGTERM: the leader releases its lease as it stops and the watching standby takes over at once; " +
			"the takeover after a SIGKILL minus this is what waiting for the lease to expire costs"})
}

// clusterRig is the ingestor and the api binaries on a three-node
// JetStream cluster (servers embedded in the bench process), with
// NATS_REPLICAS=3, under the steady load.
type clusterRig struct {
	name, table, stream string
	nodes               []*devstack.NATS
	nc                  *nats.Conn
	js                  jetstream.JetStream
	ferret              *ferretRun
	ing                 *ingestorProc
	api                 *apiProc
	load                *failoverLoad
}

func (e *benchEnv) startClusterRig(ctx context.Context) (c *clusterRig, err error) {
	c = &clusterRig{name: e.name("fnats")}
	c.table, c.stream = "public."+c.name, strings.ToUpper(c.name)
	defer func() {
		if err != nil {
			c.stop(ctx, e)
		}
	}()
	if c.nodes, err = devstack.StartNATSCluster(filepath.Join(e.dir, c.name), 3); err != nil {
		return c, err
	}
	if c.nc, err = nats.Connect(devstack.ClusterURL(c.nodes)); err != nil {
		return c, fmt.Errorf("connect to the cluster: %w", err)
	}
	if c.js, err = jetstream.New(c.nc); err != nil {
		return c, err
	}
	if _, err := e.conn.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (codigo text primary key, nombre text, rol text, activo boolean)", c.table)); err != nil {
		return c, err
	}
	if _, err := e.conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s VALUES ('S-0000', 'Empleado', 'vendedor', true)", c.table)); err != nil {
		return c, err
	}
	if c.ferret, err = e.freshFerret(ctx, c.name); err != nil {
		return c, err
	}
	if _, err := c.ferret.client.Database("bench").Collection(c.name).InsertOne(ctx, bson.D{{Key: "vendedor", Value: "S-0000"}}); err != nil {
		return c, err
	}
	cluster := []string{"NATS_URL=" + devstack.ClusterURL(c.nodes), "NATS_REPLICAS=3", "EMPLOYEES_TABLE=" + c.table}
	if c.ing, err = e.startIngestor(ctx, c.name, c.ferret.URI, c.name, c.stream, true, cluster...); err != nil {
		return c, err
	}
	if c.api, err = e.startAPI(c.stream, c.name, append(cluster, "MONGO_DB=bench", "MONGO_COLLECTION="+c.name)...); err != nil {
		return c, err
	}
	c.load, err = e.startFailoverLoad(ctx, c.table, c.api.url+"/reportes/dashboard")
	return c, err
}

func (c *clusterRig) stop(ctx context.Context, e *benchEnv) {
	ctx = context.WithoutCancel(ctx)
	if c.load != nil {
		c.load.stop()
	}
	if c.api != nil {
		c.api.stop()
	}
	if c.ing != nil {
		_ = c.ing.stop()
	}
	if c.ferret != nil {
		c.ferret.stop()
	}
	if c.nc != nil {
		c.nc.Close()
	}
	for _, n := range c.nodes {
		if n.Server != nil && n.Server.Running() {
			n.Stop()
		}
	}
	e.dropCapture(ctx, c.name)
	_, _ = e.conn.Exec(ctx, "DROP TABLE IF EXISTS "+c.table)
}

// streamCluster is the change stream's cluster information.
func (c *clusterRig) streamCluster(ctx context.Context) (*jetstream.ClusterInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := c.js.Stream(ctx, c.stream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	if info.Cluster == nil {
		return nil, fmt.Errorf("stream %s has no cluster information", c.stream)
	}
	return info.Cluster, nil
}

// healthy waits until the stream has a leader and two current replicas,
// and the ingestor and the api are ready.
func (c *clusterRig) healthy(ctx context.Context) error {
	err := poll(time.Minute, 50*time.Millisecond, func() (bool, error) {
		ci, err := c.streamCluster(ctx)
		if err != nil || ci.Leader == "" || len(ci.Replicas) != 2 {
			return false, nil //nolint:nilerr // not yet: the cluster is still electing
		}
		for _, r := range ci.Replicas {
			if !r.Current || r.Offline {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("stream %s without a leader and two current replicas: %w", c.stream, err)
	}
	if err := waitReady(c.ing.url, 20*time.Millisecond, time.Minute); err != nil {
		return fmt.Errorf("ingestor: %w", err)
	}
	if err := waitReady(c.api.url, 20*time.Millisecond, time.Minute); err != nil {
		return fmt.Errorf("api: %w", err)
	}
	return nil
}

// leaderNode is the node leading the change stream.
func (c *clusterRig) leaderNode(ctx context.Context) (*devstack.NATS, error) {
	ci, err := c.streamCluster(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range c.nodes {
		if n.Name() == ci.Leader {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no node is named %q, the stream's leader", ci.Leader)
}

// connected lists the names of the clients connected to node.
func connected(node *devstack.NATS) []string {
	cz, err := node.Server.Connz(&server.ConnzOptions{})
	if err != nil {
		return []string{err.Error()}
	}
	var names []string
	for _, c := range cz.Conns {
		names = append(names, c.Name)
	}
	return names
}

// leaderChange is what changeLeader saw: how long the stream had no
// leader, whether the ingestor and the api were connected to the server it
// stopped (and had to reconnect), and whether the api's consumer (an R1
// ordered consumer, which the api replaces when the stream advises a new
// leader) was on it.
type leaderChange struct {
	elected                 time.Duration
	ingestor, api, consumer bool
}

// consumerOn reports whether a consumer of the change stream (the api's)
// is on the server named node.
func (c *clusterRig) consumerOn(ctx context.Context, node string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := c.js.Stream(ctx, c.stream)
	if err != nil {
		return false, err
	}
	found := false
	list := s.ListConsumers(ctx)
	for ci := range list.Info() {
		found = found || ci.Cluster != nil && ci.Cluster.Leader == node
	}
	if err := list.Err(); err != nil {
		return false, fmt.Errorf("list the consumers of %s: %w", c.stream, err)
	}
	return found, nil
}

// changeLeader stops the stream's leader once update from+failoverStopAt
// is committed, waits for another server to lead, and starts it again once
// from+failoverStartAt is: it returns how long the stream had no leader
// (from the stop being called until another server says it leads).
func (e *benchEnv) changeLeader(ctx context.Context, c *clusterRig, from int) (lc leaderChange, err error) {
	leader, err := c.leaderNode(ctx)
	if err != nil {
		return lc, err
	}
	if err := c.load.waitCommitted(from+failoverStopAt, time.Minute); err != nil {
		return lc, err
	}
	clients := connected(leader)
	lc.ingestor, lc.api = slices.Contains(clients, "reportes-ingestor"), slices.Contains(clients, "reportes-api")
	if lc.consumer, err = c.consumerOn(ctx, leader.Name()); err != nil {
		return lc, err
	}
	e.logger.Info("stopping the stream's leader", "node", leader.Name(), "clients", clients, "api_consumer_on_it", lc.consumer)
	stopped := time.Now()
	leader.Stop()
	// Asked of the servers themselves: a client of the stopped server
	// would first have to reconnect.
	err = poll(time.Minute, 5*time.Millisecond, func() (bool, error) {
		for _, n := range c.nodes {
			if n != leader && n.Server.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, c.stream) {
				lc.elected = time.Since(stopped)
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return lc, fmt.Errorf("no new leader after %s was stopped: %w", leader.Name(), err)
	}
	if err := c.load.waitCommitted(from+failoverStartAt, time.Minute); err != nil {
		return lc, err
	}
	if err := leader.Start(); err != nil {
		return lc, fmt.Errorf("start %s again: %w", leader.Name(), err)
	}
	return lc, nil
}

// leaderWindow times failoverWindow updates of the load, the stream's
// leader changing during them when change: it returns their commit →
// dashboard times, how many the dashboard did not show within a minute,
// and what changeLeader saw.
func (e *benchEnv) leaderWindow(ctx context.Context, c *clusterRig, change bool) (lat []time.Duration, missed int, lc leaderChange, err error) {
	if err := c.healthy(ctx); err != nil {
		return nil, 0, lc, err
	}
	from := c.load.next()
	to := from + failoverWindow
	if change {
		if lc, err = e.changeLeader(ctx, c, from); err != nil {
			return nil, 0, lc, err
		}
	}
	if err := c.load.waitCommitted(to, time.Minute); err != nil {
		return nil, 0, lc, err
	}
	_ = c.load.waitSeen(to-1, time.Minute) // what is not seen by then is counted as missed
	lat, missed = c.load.latencies(from, to)
	return lat, missed, lc, nil
}

// leaderChangeRuns are the leader-change figure's runs: p99 and max of the
// windows with and without a leader change, in ms.
type leaderChangeRuns struct {
	p99, max, refP99, refMax, elected []float64
	missed, refMissed                 int
	ingestorOn, apiOn, consumerOn     int // runs in which it was on the stopped server
}

func (e *benchEnv) leaderChangeFigure(ctx context.Context, rep *report) error {
	c, err := e.startClusterRig(ctx)
	if err != nil {
		return err
	}
	defer c.stop(ctx, e)
	var r leaderChangeRuns
	for range e.o.runs {
		ref, refMissed, _, err := e.leaderWindow(ctx, c, false)
		if err != nil {
			return fmt.Errorf("reference window: %w", err)
		}
		lat, missed, lc, err := e.leaderWindow(ctx, c, true)
		if err != nil {
			return fmt.Errorf("leader-change window: %w", err)
		}
		if len(lat) == 0 || len(ref) == 0 {
			return fmt.Errorf("the dashboard showed none of the updates (%d and %d missed)", missed, refMissed)
		}
		r.p99, r.max = append(r.p99, msf(percentile(lat, .99))), append(r.max, msf(percentile(lat, 1)))
		r.refP99, r.refMax = append(r.refP99, msf(percentile(ref, .99))), append(r.refMax, msf(percentile(ref, 1)))
		r.elected, r.missed, r.refMissed = append(r.elected, msf(lc.elected)), r.missed+missed, r.refMissed+refMissed
		r.ingestorOn, r.apiOn, r.consumerOn = r.ingestorOn+b2i(lc.ingestor), r.apiOn+b2i(lc.api), r.consumerOn+b2i(lc.consumer)
		e.logger.Info("freshness across a NATS leader change", "p99_ms", r.p99[len(r.p99)-1], "max_ms", r.max[len(r.max)-1],
			"reference_p99_ms", r.refP99[len(r.refP99)-1], "new_leader_after_ms", msf(lc.elected), "ingestor_reconnected", lc.ingestor,
			"api_reconnected", lc.api, "api_consumer_lost", lc.consumer, "missed", missed)
	}
	r.add(rep)
	return nil
}

// b2i is 1 for true.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (r leaderChangeRuns) add(rep *report) {
	refName := "same cluster, no leader change"
	note := fmt.Sprintf("a three-node JetStream cluster (servers embedded in the bench process), the ingestor and the api binaries with NATS_REPLICAS=3; "+
		"one update of an employee every %s, %d per window; %s into the window the server leading the change stream is shut down (Server.Shutdown, as a SIGTERM to nats-server does), "+
		"and started again %s into it, once another server leads (one was reported %.0f ms after the stop, median); "+
		"the ingestor was connected to the stopped server (and reconnected) in %d of %d runs, the api in %d, "+
		"and the api's consumer (R1; the api starts a new one when the stream advises a new leader) was on it in %d; "+
		"commit → seen in GET /reportes/dashboard polled every millisecond; the reference is the window just before on the same cluster and processes; "+
		"not seen within a minute: %d (reference %d)",
		failoverEvery, failoverWindow, failoverEvery*failoverStopAt, failoverEvery*failoverStartAt, summarize(r.elected).med,
		r.ingestorOn, len(r.p99), r.apiOn, r.consumerOn, r.missed, r.refMissed)
	rep.add(row{figure: "PostgreSQL commit → dashboard across a NATS stream-leader change, p99 (ms)", ours: summarize(r.p99), ref: summarize(r.refP99),
		refName: refName, ratios: ratios(r.p99, r.refP99), unit: "ms", note: note})
	rep.add(row{figure: "PostgreSQL commit → dashboard across a NATS stream-leader change, max (ms)", ours: summarize(r.max), ref: summarize(r.refMax),
		refName: refName, ratios: ratios(r.max, r.refMax), unit: "ms"})
}
