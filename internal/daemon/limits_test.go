package daemon

import (
	"testing"
	"time"
)

func TestSourceLimitsFlags(t *testing.T) {
	if cfg, err := SourceLimits(16, 200, 400); err != nil || cfg.MaxPending != 16 || cfg.Rate != 200 || cfg.Burst != 400 {
		t.Fatalf("valid limits: %+v %v", cfg, err)
	}
	if cfg, err := SourceLimits(-1, -1, 1); err != nil || cfg.MaxPending != -1 || cfg.Rate != -1 {
		t.Fatalf("limits off: %+v %v", cfg, err)
	}
	for _, bad := range []struct {
		pending int
		rate    float64
		burst   int
	}{{0, 1, 1}, {-2, 1, 1}, {1, 0, 1}, {1, -3, 1}, {1, 1, 0}, {1, 2e9, 1}} {
		if _, err := SourceLimits(bad.pending, bad.rate, bad.burst); err == nil {
			t.Errorf("SourceLimits(%d, %g, %d) accepted", bad.pending, bad.rate, bad.burst)
		}
	}
	if _, err := HandshakeTimeout(0); err == nil {
		t.Error("zero handshake timeout accepted")
	}
	now, err := TestClock(-time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(now()); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("clock offset -1h gives %s behind", d)
	}
}
