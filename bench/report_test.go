package main

import "testing"

func TestRatioSpanShowsTheSideOfTheBar(t *testing.T) {
	for _, tc := range []struct {
		ratios   []float64
		bar, max float64
		want     string
	}{
		{ratios: []float64{0.8956}, bar: 0.9, want: "0.896"},
		{ratios: []float64{0.89996}, bar: 0.9, want: "0.89996"},
		{ratios: []float64{0.9012}, bar: 0.9, want: "0.90"},
		{ratios: []float64{0.87, 0.8956, 0.91}, bar: 0.9, want: "0.896 [0.87–0.91]"},
		{ratios: []float64{1.5004}, max: 1.5, want: "1.5004"},
		{ratios: []float64{1.4996}, max: 1.5, want: "1.50"},
		{ratios: []float64{0.8956}, want: "0.90"},
	} {
		x := row{ratios: tc.ratios, bar: tc.bar, maxRatio: tc.max}
		if got := x.ratioSpan(); got != tc.want {
			t.Errorf("ratios %v, bar %v, max %v: got %q, want %q", tc.ratios, tc.bar, tc.max, got, tc.want)
		}
	}
}
