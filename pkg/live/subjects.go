package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/projection"
	"github.com/reportes/reportes/pkg/stream"
)

// Defaults of the metric-update stream.
const (
	DefaultMetricsStream = "REPORTES_METRICS"
	DefaultMetricsPrefix = "reportes.metrics"
)

// SellerMessage is the payload of <prefix>.vendedor.<code>: the seller's
// line at Seq, the sequence of the last change that touched it. A seller
// that is not (or no longer) an employee's code has EsEmpleado false: that
// is the final message of a deleted employee.
type SellerMessage struct {
	projection.SellerUpdate
	// UltimoCambio is the source commit time of the newest change the
	// update held.
	UltimoCambio *time.Time `json:"ultimo_cambio"`
}

// GlobalMessage is the payload of <prefix>.global: the totals at Seq.
type GlobalMessage struct {
	projection.GlobalUpdate
	UltimoCambio *time.Time `json:"ultimo_cambio"`
}

// StreamConfig describes the metric-update stream.
type StreamConfig struct {
	Name       string        // default REPORTES_METRICS
	Prefix     string        // default reportes.metrics; the stream captures prefix.>
	Duplicates time.Duration // deduplication window (default 2 minutes)
	Replicas   int           // when the stream is created (default 1)
}

func (c StreamConfig) withDefaults() StreamConfig {
	if c.Name == "" {
		c.Name = DefaultMetricsStream
	}
	if c.Prefix == "" {
		c.Prefix = DefaultMetricsPrefix
	}
	if c.Duplicates == 0 {
		c.Duplicates = 2 * time.Minute
	}
	c.Replicas = max(c.Replicas, 1)
	return c
}

// EnsureStream creates the metric-update stream when it does not exist: it
// keeps the last message of each subject, so that a subscriber that joins
// late reads every seller's current line and the totals at once. An
// existing stream is left as it is, but for capturing prefix.>.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	cfg = cfg.withDefaults()
	subject := cfg.Prefix + ".>"
	s, err := stream.OpenOrCreate(ctx,
		func(ctx context.Context) (jetstream.Stream, error) { return js.Stream(ctx, cfg.Name) },
		func(ctx context.Context) (jetstream.Stream, error) {
			return js.CreateStream(ctx, jetstream.StreamConfig{
				Name:              cfg.Name,
				Description:       "reportes metric updates, the last per subject (docs/events.md)",
				Subjects:          []string{subject},
				Storage:           jetstream.FileStorage,
				MaxMsgsPerSubject: 1,
				Discard:           jetstream.DiscardOld,
				Duplicates:        cfg.Duplicates,
				Replicas:          cfg.Replicas,
			})
		})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
	}
	have := s.CachedInfo().Config
	if stream.Captures(have.Subjects, subject) {
		return s, nil
	}
	have.Subjects = append(slices.Clone(have.Subjects), subject)
	if s, err = js.UpdateStream(ctx, have); err != nil {
		return nil, fmt.Errorf("ensure stream %s: add subjects %s: %w", cfg.Name, subject, err)
	}
	return s, nil
}

// Subjects publishes the view's updates on the metric-update subjects,
// into the stream of EnsureStream. Each message carries a Nats-Msg-Id made
// of its subject and its sequence, so the stream stores one copy of an
// update however many API replicas publish it. What is not acknowledged
// goes back into the coalescing, so the next attempt sends the latest line.
type Subjects struct {
	conn     func() *nats.Conn
	cfg      StreamConfig
	opts     options
	coalesce *Coalescer
	timeout  time.Duration

	js   jetstream.JetStream
	jsOf *nats.Conn // the connection js was made for
}

// NewSubjects publishes through the connection conn returns (the
// projector's: it may replace a connection the client closed), into the
// stream cfg describes.
func NewSubjects(conn func() *nats.Conn, cfg StreamConfig, opts ...Option) *Subjects {
	s := &Subjects{conn: conn, cfg: cfg.withDefaults(), opts: newOptions(opts), timeout: 5 * time.Second}
	s.coalesce = NewCoalescer(s.opts.interval, s.Publish)
	return s
}

// Add hands an update of the view to be coalesced and published.
func (s *Subjects) Add(u projection.Update) { s.coalesce.Add(u) }

// Run makes sure the stream exists (retrying while NATS cannot be
// reached), then publishes the coalesced updates until ctx ends.
func (s *Subjects) Run(ctx context.Context) error {
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		_, err := EnsureStream(ctx, s.jetStream(), s.cfg)
		if err != nil {
			s.opts.logger.Warn("metric-update stream not ready; retrying", "stream", s.cfg.Name, "err", err)
		}
		return struct{}{}, err
	}, backoff.WithBackOff(backoff.NewExponentialBackOff()), backoff.WithMaxElapsedTime(0))
	if ctx.Err() != nil {
		return nil //nolint:nilerr // stopped before the stream was ready: a clean stop
	}
	if err != nil {
		return fmt.Errorf("metric-update stream %s: %w", s.cfg.Name, err)
	}
	return s.coalesce.Run(ctx)
}

func (s *Subjects) jetStream() jetstream.JetStream {
	nc := s.conn()
	if s.js == nil || s.jsOf != nc {
		s.js, _ = jetstream.New(nc) // fails only for a nil connection
		s.jsOf = nc
	}
	return s.js
}

// SellerSubject is the subject of a seller's updates: the code as one
// subject token, bounded (cdc.SubjectToken).
func SellerSubject(prefix, code string) string {
	return prefix + ".vendedor." + cdc.SubjectToken(code, false)
}

// outgoing is one message of an update.
type outgoing struct {
	subject string
	seq     uint64
	body    []byte
	seller  *projection.SellerUpdate // nil for the totals
}

// Publish stores each line of u on its subject unless the stream already
// holds that line or a newer one (another replica, ahead of this one, may
// have stored it), and hands back to the coalescing what it could not
// store.
func (s *Subjects) Publish(u projection.Update) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	var failed projection.Update
	js := s.jetStream()
	st, streamErr := js.Stream(ctx, s.cfg.Name) // once per update, not per message
	for _, m := range s.messages(u) {
		result, err := "", streamErr
		if err == nil {
			result, err = store(ctx, js, st, m)
		}
		if err != nil {
			result = "failed"
			s.opts.logger.Warn("metric update not stored; retrying", "subject", m.subject, "seq", m.seq, "err", err)
			if m.seller != nil {
				failed.Sellers = append(failed.Sellers, *m.seller)
			} else {
				failed.Totals = u.Totals
			}
		}
		metricMessages.WithLabelValues(result).Inc()
		s.opts.logger.Debug("metric update", "subject", m.subject, "seq", m.seq, "result", result)
	}
	if len(failed.Sellers) > 0 || failed.Totals != nil {
		failed.From, failed.Seq, failed.CommitTime = u.From, u.Seq, u.CommitTime
		s.again(failed)
	}
}

func (s *Subjects) messages(u projection.Update) []outgoing {
	commit := commitTime(u)
	out := make([]outgoing, 0, len(u.Sellers)+1)
	for i := range u.Sellers {
		su := &u.Sellers[i]
		body, _ := json.Marshal(SellerMessage{SellerUpdate: *su, UltimoCambio: commit})
		out = append(out, outgoing{SellerSubject(s.cfg.Prefix, su.Empleado), su.Seq, body, su})
	}
	if u.Totals != nil {
		body, _ := json.Marshal(GlobalMessage{GlobalUpdate: *u.Totals, UltimoCambio: commit})
		out = append(out, outgoing{s.cfg.Prefix + ".global", u.Totals.Seq, body, nil})
	}
	return out
}

// store publishes m only over an older message of its subject, by compare
// and set: it reads the subject's last message and publishes expecting it
// to be still the last (Nats-Expected-Last-Subject-Sequence). Replicas
// that apply the stream at different speeds thus never put an older line
// over a newer one. It returns "stored", "duplicate" (the same id within
// the duplicate window) or "current" (the stream holds this line or a
// newer one).
func store(ctx context.Context, js jetstream.JetStream, st jetstream.Stream, m outgoing) (string, error) {
	for range 5 {
		var expect uint64
		last, err := st.GetLastMsgForSubject(ctx, m.subject)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return "", err
		case seqOf(last.Header.Get(jetstream.MsgIDHeader)) >= m.seq:
			return "current", nil
		default:
			expect = last.Sequence
		}
		msg := &nats.Msg{Subject: m.subject, Data: m.body, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, m.subject+":"+strconv.FormatUint(m.seq, 10))
		msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(expect, 10))
		ack, err := js.PublishMsg(ctx, msg)
		switch {
		case err == nil && ack.Duplicate:
			return "duplicate", nil
		case err == nil:
			return "stored", nil
		case !wrongLastSequence(err):
			return "", err
		}
		// Another replica stored a line meanwhile: look again.
	}
	return "", errors.New("the subject kept changing under it")
}

// seqOf reads the view sequence from a metric message's id
// (<subject>:<seq>).
func seqOf(id string) uint64 {
	n, _ := strconv.ParseUint(id[strings.LastIndexByte(id, ':')+1:], 10, 64)
	return n
}

func wrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// again adds what failed back into the coalescing after a pause, so that
// an outage is not a busy loop. It pauses on the coalescer's goroutine:
// what the view changed meanwhile is pending already, and the coalescing
// keeps the newer line of each seller.
func (s *Subjects) again(failed projection.Update) {
	time.Sleep(250 * time.Millisecond)
	s.coalesce.Add(failed)
}

func commitTime(u projection.Update) *time.Time {
	if u.CommitTime.IsZero() {
		return nil
	}
	t := u.CommitTime.UTC()
	return &t
}
