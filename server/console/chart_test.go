package console

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

func TestChart(t *testing.T) {
	start := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	hours := []*pb.DecisionHour{
		{Start: timestamppb.New(start), Allowed: 3, Denied: 2, DeniedByReason: map[string]uint64{"no_consent": 2, "quiet_hours": 1}},
		{Start: timestamppb.New(start.Add(time.Hour))},
		{Start: timestamppb.New(start.Add(2 * time.Hour)), Allowed: 1, Denied: 6, DeniedByReason: map[string]uint64{"quiet_hours": 6}},
	}
	ch := newChart(hours)
	if ch.Max != 7 || ch.Allowed != 4 || ch.Denied != 8 || ch.Total != 12 {
		t.Fatalf("max %d allowed %d denied %d total %d", ch.Max, ch.Allowed, ch.Denied, ch.Total)
	}
	// Ticks at whole steps, up to the first multiple at or above the highest bar.
	var labels []string
	for _, tk := range ch.Ticks {
		labels = append(labels, tk.Label)
	}
	if got := labels; len(got) != 5 || got[0] != "0" || got[1] != "2" || got[4] != "8" {
		t.Errorf("ticks %v, want 0 2 4 6 8", got)
	}
	// Each bar's parts add up to its total height; reasons counted twice are scaled.
	scale := float64(ch.PlotH) / 8
	for i, b := range ch.Bars {
		var h float64
		for _, p := range b.Parts {
			h += p.H
		}
		want := float64(hours[i].Allowed+hours[i].Denied) * scale
		if d := h - want; d > 1e-9 || d < -1e-9 {
			t.Errorf("bar %d: height %f, want %f", i, h, want)
		}
	}
	// The legend names every colour in text, most frequent reason first.
	want := []string{"allowed (4)", "denied: quiet_hours (7)", "denied: no_consent (2)"}
	for i, l := range ch.Legend {
		if l.Label != want[i] {
			t.Errorf("legend %d: %q, want %q", i, l.Label, want[i])
		}
	}
	if ch.Bars[0].Label != "00:00" || ch.Bars[1].Label != "" || ch.Bars[0].Title != "2026-11-30 00:00 UTC: 3 allowed, 2 denied" {
		t.Errorf("labels %q %q, title %q", ch.Bars[0].Label, ch.Bars[1].Label, ch.Bars[0].Title)
	}
}
