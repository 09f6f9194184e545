package console

import (
	"context"
	"fmt"
	"net/http"
	"sort"

	"connectrpc.com/connect"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/rpc"
)

// Chart geometry, in SVG user units.
const (
	chartW, chartH         = 760, 260
	chartLeft, chartBottom = 48, 36
	chartTop               = 12
)

// palette colours denial reasons; the legend names each in text.
var palette = []string{"#c62828", "#ef6c00", "#6a1b9a", "#ad1457", "#4e342e", "#37474f", "#00838f", "#9e9d24"}

// chart is a stacked bar chart of decisions per hour, drawn on the server.
type chart struct {
	W, H, Left, Bottom, PlotH int
	Bars                      []bar
	Ticks                     []tick
	Legend                    []legendItem
	Max                       uint64
	Total, Allowed, Denied    uint64
}

type bar struct {
	X, W  float64
	Label string // hour label under every few bars
	Title string // a text description of the bar (tooltip and screen readers)
	Parts []rect
}

type rect struct {
	Y, H float64
	Fill string
}

type tick struct {
	Y     float64
	Label string
}

type legendItem struct{ Fill, Label string }

func newChart(hours []*pb.DecisionHour) chart {
	ch := chart{W: chartW, H: chartH, Left: chartLeft, Bottom: chartH - chartBottom, PlotH: chartH - chartBottom - chartTop}
	reasons := map[string]uint64{}
	for _, h := range hours {
		ch.Max = max(ch.Max, h.Allowed+h.Denied)
		ch.Allowed += h.Allowed
		ch.Denied += h.Denied
		for r, n := range h.DeniedByReason {
			reasons[r] += n
		}
	}
	ch.Total = ch.Allowed + ch.Denied
	var names []string
	for r := range reasons {
		names = append(names, r)
	}
	sort.Slice(names, func(i, j int) bool {
		return reasons[names[i]] > reasons[names[j]] || reasons[names[i]] == reasons[names[j]] && names[i] < names[j]
	})
	fill := map[string]string{}
	ch.Legend = append(ch.Legend, legendItem{"#2e7d32", fmt.Sprintf("allowed (%d)", ch.Allowed)})
	for i, r := range names {
		fill[r] = palette[i%len(palette)]
		ch.Legend = append(ch.Legend, legendItem{fill[r], fmt.Sprintf("denied: %s (%d)", r, reasons[r])})
	}
	// Ticks at whole numbers: the axis tops at the first multiple of the
	// step at or above the highest bar.
	step := max((ch.Max+3)/4, 1)
	top := max((ch.Max+step-1)/step*step, step)
	scale := float64(ch.PlotH) / float64(top)
	for v := uint64(0); v <= top; v += step {
		ch.Ticks = append(ch.Ticks, tick{Y: float64(ch.Bottom) - float64(v)*scale, Label: fmt.Sprint(v)})
	}
	slot := float64(chartW-chartLeft-8) / float64(max(len(hours), 1))
	for i, h := range hours {
		b := bar{X: float64(chartLeft) + float64(i)*slot + slot*0.1, W: slot * 0.8}
		t := h.Start.AsTime().UTC()
		if i%4 == 0 {
			b.Label = t.Format("15:04")
		}
		b.Title = fmt.Sprintf("%s UTC: %d allowed, %d denied", t.Format("2006-01-02 15:04"), h.Allowed, h.Denied)
		y := float64(ch.Bottom)
		add := func(n uint64, f string) {
			if n == 0 {
				return
			}
			hgt := float64(n) * scale
			y -= hgt
			b.Parts = append(b.Parts, rect{Y: y, H: hgt, Fill: f})
		}
		add(h.Allowed, "#2e7d32")
		// A decision denied for two reasons counts under both: scale the
		// reasons to the denied count so the bar's height stays true.
		var sum uint64
		for _, n := range h.DeniedByReason {
			sum += n
		}
		for _, r := range names {
			if n := h.DeniedByReason[r]; n > 0 {
				hgt := float64(h.Denied) * float64(n) / float64(sum) * scale
				y -= hgt
				b.Parts = append(b.Parts, rect{Y: y, H: hgt, Fill: fill[r]})
			}
		}
		ch.Bars = append(ch.Bars, b)
	}
	return ch
}

func (c *Console) audit(w http.ResponseWriter, r *http.Request, p rpc.Principal) {
	if !c.gate(w, r, p, "/console/audit") {
		return
	}
	ctx := c.callCtx(r, p)
	data := map[string]any{"Title": "Audit"}
	cps, err := c.newestCheckpoints(ctx, 20)
	switch {
	case forbidden(err):
		data["CheckpointsHidden"] = true
	case err != nil:
		c.failed(w, r, err)
		return
	}
	type cpRow struct {
		*pb.CosignedCheckpoint
		Signers []string
	}
	var rows []cpRow
	for i := len(cps) - 1; i >= 0; i-- {
		rows = append(rows, cpRow{cps[i], signatureLines(cps[i].Checkpoint)})
	}
	data["Checkpoints"] = rows
	stats, err := c.api.log.GetDecisionStats(ctx, connect.NewRequest(&pb.GetDecisionStatsRequest{Hours: 24}))
	if err != nil {
		c.failed(w, r, err)
		return
	}
	data["Chart"], data["Hours"] = newChart(stats.Msg.Hours), stats.Msg.Hours
	c.render(w, r, "audit", http.StatusOK, data)
}

// newestCheckpoints returns up to n of the newest kept checkpoints, oldest
// first. ListCheckpoints pages upwards from a size, so it looks back from
// the latest size over a window that doubles until the window holds n
// checkpoints (or reaches size 0), then reads the window to its end.
func (c *Console) newestCheckpoints(ctx context.Context, n int) ([]*pb.CosignedCheckpoint, error) {
	latest, err := c.api.log.GetCheckpoint(ctx, connect.NewRequest(&pb.GetCheckpointRequest{}))
	if err != nil {
		return nil, err
	}
	size := latest.Msg.Size
	for back := uint64(1); ; back *= 2 {
		start := uint64(0)
		if back < size {
			start = size - back
		}
		var got []*pb.CosignedCheckpoint
		for from := start; ; {
			res, err := c.api.log.ListCheckpoints(ctx, connect.NewRequest(&pb.ListCheckpointsRequest{StartSize: from, Count: 1000}))
			if err != nil {
				return nil, err
			}
			got = append(got, res.Msg.Checkpoints...)
			if len(got) > n {
				got = got[len(got)-n:]
			}
			if len(res.Msg.Checkpoints) < 1000 {
				break
			}
			from = res.Msg.Checkpoints[len(res.Msg.Checkpoints)-1].Size + 1
		}
		if len(got) >= n || start == 0 {
			return got, nil
		}
	}
}
