package cdc

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nats-io/nats-server/v2/server"
)

func TestSubjectTokenBounds(t *testing.T) {
	long := strings.Repeat("ñ", 5000) // 10 KB
	tests := []struct {
		name, in string
		keepDots bool
		want     string
	}{
		{"plain", "S-01", false, "S-01"},
		{"reserved", "S.01 x*>", false, "S_01_x__"},
		{"empty", "", false, "_"},
		{"control", "a\tb\nc\x7f", false, "a_b_c_"},
		{"unicode space", "a\u00a0b\u2028c", false, "a_b_c"},
		{"dots kept", "public.empleados", true, "public.empleados"},
		{"empty tokens", ".a..b.", true, "_.a._.b._"},
		{"exactly the bound", strings.Repeat("x", MaxTokenBytes), false, strings.Repeat("x", MaxTokenBytes)},
	}
	for _, tt := range tests {
		if got := SubjectToken(tt.in, tt.keepDots); got != tt.want {
			t.Errorf("%s: SubjectToken(%q, %t) = %q, want %q", tt.name, tt.in, tt.keepDots, got, tt.want)
		}
	}
	a, b := SubjectToken(long, false), SubjectToken(long+"x", false)
	if len(a) > MaxTokenBytes || !utf8.ValidString(a) || !strings.HasPrefix(a, "ññ") || !strings.Contains(a, "~") {
		t.Errorf("long token %q (%d bytes)", a, len(a))
	}
	if a == b {
		t.Errorf("two long values share the token %q", a)
	}
	if SubjectToken(long, false) != a {
		t.Error("bounding is not deterministic")
	}
	if got := Bound(strings.Repeat("k", 10_000)); len(got) > MaxTokenBytes {
		t.Errorf("Bound left %d bytes", len(got))
	}
	// A value shaped like another's bounded form keeps a form of its own.
	if forged := Bound(strings.Repeat("k", 10_000)); Bound(forged) == forged {
		t.Errorf("Bound(%q) is itself", forged)
	}
}

// FuzzSubjectToken: whatever a source holds, the subject built from it is
// one the NATS server accepts, bounded, and the same for the same value;
// the nats-server's own subject check is the reference.
func FuzzSubjectToken(f *testing.F) {
	for _, s := range []string{"S-01", "", ".", "a..b", "*", ">", " ", "\x00", "\xff\xfe", strings.Repeat("é", 40), "a.b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := SubjectToken(s, false)
		if tok == "" || len(tok) > MaxTokenBytes || strings.Contains(tok, ".") || !utf8.ValidString(tok) {
			t.Fatalf("SubjectToken(%q) = %q", s, tok)
		}
		if subj := "reportes.metrics.vendedor." + tok; !server.IsValidPublishSubject(subj) {
			t.Fatalf("subject %q from %q is not valid", subj, s)
		}
		if SubjectToken(s, false) != tok {
			t.Fatalf("SubjectToken(%q) is not deterministic", s)
		}
		multi := SubjectToken(s, true)
		if subj := CollectionSubject("reportes.cdc", "mongo", s); !server.IsValidPublishSubject(subj) {
			t.Fatalf("subject %q from collection %q is not valid", subj, s)
		}
		for _, part := range strings.Split(multi, ".") {
			if part == "" || len(part) > MaxTokenBytes {
				t.Fatalf("SubjectToken(%q, true) = %q", s, multi)
			}
		}
		if id := Bound(s); len(id) > MaxTokenBytes || (len(s) <= MaxTokenBytes && !strings.Contains(s, "~") && id != s) {
			t.Fatalf("Bound(%q) = %q", s, id)
		}
	})
}
