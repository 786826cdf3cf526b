package syncer

import (
	"testing"
	"time"
)

func TestQuiet(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := time.Second
	for _, tc := range []struct {
		first, last time.Duration
		min, max    time.Duration
		want        time.Duration
	}{
		{0, 0, 2 * s, 10 * s, 2 * s},      // one change: min after it
		{0, 5 * s, 2 * s, 10 * s, 7 * s},  // a burst keeps pushing
		{0, 9 * s, 2 * s, 10 * s, 10 * s}, // ...but never past first+max
		{0, 9 * s, 2 * s, 0, 11 * s},      // no max: min after the last
	} {
		got := Quiet(t0.Add(tc.first), t0.Add(tc.last), tc.min, tc.max)
		if got != t0.Add(tc.want) {
			t.Errorf("Quiet(%v, %v, %v, %v) = %v, want %v", tc.first, tc.last, tc.min, tc.max, got.Sub(t0), tc.want)
		}
	}
}
