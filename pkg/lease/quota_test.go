package lease

import "testing"

func TestQuotaCoversThePartitions(t *testing.T) {
	for p := 1; p <= 10; p++ {
		for m := 1; m <= 12; m++ {
			sum := 0
			for i := range m {
				q := quota(p, m, i)
				if q < p/m || q > (p+m-1)/m {
					t.Fatalf("quota(%d, %d, %d) = %d, not floor or ceil of %d/%d", p, m, i, q, p, m)
				}
				sum += q
			}
			if sum != p {
				t.Fatalf("quotas of %d members add up to %d, want %d", m, sum, p)
			}
		}
	}
}

func TestNames(t *testing.T) {
	for _, s := range []string{"a", "proj-0.member.x", "a/b=c_d"} {
		if !ValidName(s) {
			t.Errorf("ValidName(%q) = false", s)
		}
	}
	for _, s := range []string{"", ".a", "a.", "a..b", "a b", "a*", "a>", "é"} {
		if ValidName(s) {
			t.Errorf("ValidName(%q) = true", s)
		}
	}
	for in, want := range map[string]string{"host:4242": "host_4242", ".a..b.": "a.b", "": "_", "ok-1": "ok-1"} {
		if got := Sanitize(in); got != want || !ValidName(got) {
			t.Errorf("Sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}
