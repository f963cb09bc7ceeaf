package cdc

import (
	"context"
	"errors"
	"testing"
	"time"
)

// flaky is a source whose runs fail with the errors listed, one per run,
// then wait for the end of ctx.
type flaky struct {
	errs []error
	runs int
}

func (f *flaky) Name() string { return "flaky" }

func (f *flaky) Run(ctx context.Context, _ Publisher) error {
	f.runs++
	if f.runs <= len(f.errs) {
		return f.errs[f.runs-1]
	}
	<-ctx.Done()
	return ctx.Err()
}

func TestSupervise(t *testing.T) {
	transient, refused := errors.New("connection refused"), Permanent(errors.New("password authentication failed"))
	for _, tt := range []struct {
		name string
		errs []error
		want error // nil: stops cleanly when ctx ends
		runs int
	}{
		{"restarts until a permanent failure", []error{transient, nil, refused}, ErrPermanent, 3},
		{"stops cleanly when ctx ends", []error{transient}, nil, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := &flaky{errs: tt.errs}
			opened, released := 0, 0
			open := func() (Publisher, func(), error) {
				opened++
				return &recorder{}, func() { released++ }, nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			err := Supervise(ctx, src, open, WithMaxBackoff(10*time.Millisecond))
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("Supervise: %v, want a clean stop", err)
			case tt.want != nil && (!errors.Is(err, tt.want) || err.Error() != "source flaky: "+refused.Error()):
				t.Fatalf("Supervise: %v, want the source's permanent failure", err)
			case src.runs != tt.runs || opened != tt.runs || released != tt.runs:
				t.Fatalf("%d runs, %d publishers opened, %d released; want %d each", src.runs, opened, released, tt.runs)
			}
		})
	}
}
