package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/ledger/witness"
	"github.com/consentledger/consentledger/rpc"
)

// startWitnesses starts the witness submitter when witnesses are
// configured (nil otherwise); stop ends it and waits for it.
func startWitnesses(ctx context.Context, cfg Config, l *ledger.Ledger, log *slog.Logger) (*witness.Submitter, func(), error) {
	if len(cfg.Witnesses) == 0 {
		return nil, func() {}, nil
	}
	s, err := witness.New(l, witness.Options{Witnesses: cfg.Witnesses, Interval: cfg.WitnessInterval, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.Run(ctx) })
	names := make([]string, len(cfg.Witnesses))
	for i, w := range cfg.Witnesses {
		names[i] = w.Name
	}
	log.Info("submitting checkpoints to witnesses", "witnesses", names, "quorum", cfg.WitnessQuorum)
	return s, func() { cancel(); wg.Wait() }, nil
}

// witnessInfo adapts the submitter's status for GetCheckpoint.
func witnessInfo(s *witness.Submitter) func() []rpc.WitnessInfo {
	if s == nil {
		return nil
	}
	return func() []rpc.WitnessInfo {
		st := s.Status()
		out := make([]rpc.WitnessInfo, len(st))
		for i, w := range st {
			out[i] = rpc.WitnessInfo{Name: w.Name, URL: w.URL, VKey: s.VKey(w.Name), LastCosignedSize: w.LastCosignedSize,
				LastCosignedAt: w.LastCosignedAt, Failures: w.Failures, LastError: w.LastError, Alarm: w.Alarm}
		}
		return out
	}
}

// witnessCollector exports the submitter's status per witness.
type witnessCollector struct {
	s                    *witness.Submitter
	now                  func() time.Time
	size, age, fail, alm *prometheus.Desc
}

// witnesses registers the per-witness metrics (README.md: Witnesses).
func (m *metrics) witnesses(s *witness.Submitter, now func() time.Time) {
	if s == nil {
		return
	}
	if now == nil {
		now = time.Now
	}
	l := []string{"witness"}
	m.reg.MustRegister(&witnessCollector{s: s, now: now,
		size: prometheus.NewDesc("consentledger_witness_cosigned_size", "Tree size of the latest checkpoint this witness cosigned.", l, nil),
		age:  prometheus.NewDesc("consentledger_witness_cosignature_age_seconds", "Age of this witness's latest cosignature, by its own timestamp (absent before the first).", l, nil),
		fail: prometheus.NewDesc("consentledger_witness_failures_total", "Failed submissions to this witness since start.", l, nil),
		alm:  prometheus.NewDesc("consentledger_witness_alarm", "1 when this witness has seen another log under our origin (fork or rollback); submissions to it stopped.", l, nil),
	})
}

func (c *witnessCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.size
	ch <- c.age
	ch <- c.fail
	ch <- c.alm
}

func (c *witnessCollector) Collect(ch chan<- prometheus.Metric) {
	for _, w := range c.s.Status() {
		ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(w.LastCosignedSize), w.Name)
		if !w.LastCosignedAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, c.now().Sub(w.LastCosignedAt).Seconds(), w.Name)
		}
		ch <- prometheus.MustNewConstMetric(c.fail, prometheus.CounterValue, float64(w.Failures), w.Name)
		alarm := 0.0
		if w.Alarm != "" {
			alarm = 1
		}
		ch <- prometheus.MustNewConstMetric(c.alm, prometheus.GaugeValue, alarm, w.Name)
	}
}
