package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/reportes/reportes/internal/config"
	"github.com/reportes/reportes/internal/httpapi"
	"github.com/reportes/reportes/pkg/projection"
)

// source is the view an API replica serves: its own (memory mode), or the
// mirror of the PostgreSQL view store.
type source interface {
	JSON() []byte
	Health() projection.Health
	Seq() uint64
}

// servingSource is the view a Serving serves now and its projector.
type servingSource struct{ s *projection.Serving }

func (s servingSource) JSON() []byte              { return s.s.View().JSON() }
func (s servingSource) Health() projection.Health { return s.s.Projector().Health() }
func (s servingSource) Seq() uint64               { return s.s.View().Seq() }

// dashboard adapts the view served to what the HTTP API serves, and says
// in an operator's words why the stream cannot be read.
type dashboard struct {
	src   source
	reach *config.Reach // whether the connections reach NATS, and why not
}

func newDashboard(reach *config.Reach) *dashboard {
	return &dashboard{reach: reach}
}

func (d *dashboard) JSON() []byte { return d.src.JSON() }

// Ready: caught up with the stream once and able to read it now.
func (d *dashboard) Ready() bool {
	h := d.src.Health()
	return h.Ready && h.Err == nil
}

// Health is the view's health, its error naming NATS as configured
// (redacted). It is called on every dashboard request: the slow parts
// run only when something is wrong.
func (d *dashboard) Health() httpapi.Health {
	h := d.src.Health()
	out := httpapi.Health{Ready: h.Ready, Since: h.Since}
	if !h.Ready {
		out.Seq = d.src.Seq()
	}
	if h.Err != nil {
		out.Err = d.explain(h.Err)
	}
	return out
}

// explain says "cannot reach NATS at <url>: <why>" while NATS cannot be
// reached, instead of the projector's "reconnecting"; other errors (a
// missing stream) already say what to do and keep their words.
func (d *dashboard) explain(err error) error {
	if _, down := d.reach.Problem(); down != nil {
		return down
	}
	return err
}

// problem is why the view cannot read its stream now and since when; nil
// when it can.
func (d *dashboard) problem() (time.Time, error) {
	h := d.Health()
	return h.Since, h.Err
}

// watch logs the stream's problems when they start, change and end, not
// at every retry, until ctx ends.
func (d *dashboard) watch(ctx context.Context, logger *slog.Logger, every time.Duration) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	var last httpapi.Health
	for {
		h := d.Health()
		logChange(logger, last, h)
		last = h
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// logChange logs h when its problem differs from last's: once when the
// stream stops being readable, again when the reason changes, once when
// it is readable again.
func logChange(logger *slog.Logger, last, h httpapi.Health) {
	switch {
	case h.Err != nil && (last.Err == nil || h.Err.Error() != last.Err.Error()):
		logger.Error("the event stream cannot be read; the dashboard says so until it can",
			"err", h.Err, "since", h.Since, "view_ready", h.Ready)
	case h.Err == nil && last.Err != nil:
		logger.Info("the event stream can be read again", "after", time.Since(last.Since).Round(time.Millisecond))
	}
}
