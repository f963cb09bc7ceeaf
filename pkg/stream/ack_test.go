package stream

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestReadAck(t *testing.T) {
	noResponders := &nats.Msg{Header: nats.Header{"Status": {"503"}}}
	tests := []struct {
		name      string
		msg       *nats.Msg
		duplicate bool
		want      error // nil: acknowledged
	}{
		{"stored", &nats.Msg{Data: []byte(`{"stream":"S","seq":7}`)}, false, nil},
		{"stored in a domain", &nats.Msg{Data: []byte(`{"stream":"S","domain":"hub","seq":7}`)}, false, nil},
		{"duplicate", &nats.Msg{Data: []byte(` {"stream":"S","seq":7,"duplicate":true} `)}, true, nil},
		{"not a duplicate", &nats.Msg{Data: []byte(`{"stream":"S","seq":7,"duplicate":false}`)}, false, nil},
		{"null error", &nats.Msg{Data: []byte(`{"stream":"S","seq":7,"error":null}`)}, false, nil},
		{"no responders", noResponders, false, jetstream.ErrNoStreamResponse},
		{"other status", &nats.Msg{Header: nats.Header{"Status": {"408"}}}, false, jetstream.ErrInvalidJSAck},
		{"empty", &nats.Msg{}, false, jetstream.ErrInvalidJSAck},
		{"not JSON", &nats.Msg{Data: []byte(`{"stream":`)}, false, jetstream.ErrInvalidJSAck},
		{"empty stream", &nats.Msg{Data: []byte(`{"stream":"","seq":7}`)}, false, jetstream.ErrInvalidJSAck},
		{"stream not a string", &nats.Msg{Data: []byte(`{"stream":5,"seq":7}`)}, false, jetstream.ErrInvalidJSAck},
		{"refused", &nats.Msg{Data: []byte(`{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}`)}, false,
			&jetstream.APIError{ErrorCode: 10077}},
		{"malformed error", &nats.Msg{Data: []byte(`{"error":"boom"}`)}, false, jetstream.ErrInvalidJSAck},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			duplicate, seq, err := readAck(tt.msg)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("readAck: %v, want an acknowledgement", err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("readAck: %v, want %v", err, tt.want)
			case duplicate != tt.duplicate:
				t.Fatalf("duplicate %v, want %v", duplicate, tt.duplicate)
			case tt.want == nil && seq != 7:
				t.Fatalf("sequence %d, want 7", seq)
			}
		})
	}
}
