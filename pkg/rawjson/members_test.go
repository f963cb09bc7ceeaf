package rawjson

import (
	"errors"
	"strings"
	"testing"
)

func TestMembers(t *testing.T) {
	for _, tt := range []struct {
		data, members, err string
	}{
		{` {"a":1, "b" : "x\ny" ,"\u0063":{"d":[null]}} `, `a=1 b="x\ny"(escaped) c={"d":[null]} `, ""},
		{`{}`, "", ""},
		{`[1]`, "", "not a JSON object"},
		{``, "", "not a JSON object"},
		{`{"a":1} x`, "a=1 ", "data after the object"},
		{`{"a":1,}`, "a=1 ", "malformed JSON"},
		{`{"a":tru}`, "", "field a: malformed JSON"},
		{`{"a" 1}`, "", "malformed JSON"},
		{`{"a":1,"stop":2,"b":3}`, "a=1 stop=2 ", "stopped"},
	} {
		var got strings.Builder
		err := Members([]byte(tt.data), &got, func(got *strings.Builder, key, value []byte, escaped bool) error {
			got.WriteString(string(key) + "=" + string(value))
			if escaped {
				got.WriteString("(escaped)")
			}
			got.WriteString(" ")
			if string(key) == "stop" {
				return errors.New("stopped")
			}
			return nil
		})
		if got.String() != tt.members || (err == nil) != (tt.err == "") || (err != nil && err.Error() != tt.err) {
			t.Errorf("%s: members %q, error %v; want %q, %q", tt.data, got.String(), err, tt.members, tt.err)
		}
	}
	if err := Members([]byte(`{"a":[`), 0, func(int, []byte, []byte, bool) error { return nil }); !errors.Is(err, ErrSyntax) {
		t.Errorf("truncated object: %v, want ErrSyntax", err)
	}
}
