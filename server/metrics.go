package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/consentledger/consentledger/ledger"
)

// metrics are the server's Prometheus metrics.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	decisions *prometheus.CounterVec
	overload  *prometheus.CounterVec
	log       *slog.Logger
}

func newMetrics(l *ledger.Ledger, log *slog.Logger) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		log: log,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consentledger_requests_total", Help: "RPCs handled, by procedure and Connect code.",
		}, []string{"procedure", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "consentledger_request_duration_seconds", Help: "RPC latency by procedure.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 5},
		}, []string{"procedure"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consentledger_decisions_total", Help: "Send decisions recorded, by result and reason code.",
		}, []string{"result", "reason"}),
	}
	m.overload = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "consentledger_overload_refused_total", Help: "Calls refused with resource_exhausted by the overload limits, by cause (in_flight, rate).",
	}, []string{"cause"})
	m.reg.MustRegister(m.requests, m.latency, m.decisions, m.overload,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "consentledger_log_size", Help: "Entries in the log."},
			func() float64 { return float64(l.Size()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "consentledger_checkpoint_size", Help: "Tree size of the latest signed checkpoint."},
			func() float64 {
				if c := l.LatestCheckpoint(); c != nil {
					return float64(c.Size)
				}
				return 0 // a standby before the leader signed its first checkpoint
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "consentledger_append_batches_total", Help: "Group-commit batches written."},
			func() float64 { return float64(l.Stats().Batches) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "consentledger_appended_entries_total", Help: "Entries written; divided by batches, the mean batch size."},
			func() float64 { return float64(l.Stats().Entries) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "consentledger_disk_free_bytes", Help: "Free bytes on the data directory's file system at the last check."},
			func() float64 { return float64(l.Space().Free) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "consentledger_disk_low", Help: "1 while appends are refused because free space is below the reserve."},
			func() float64 { return b2f(l.Space().Low) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "consentledger_storage_failed", Help: "1 after a storage write (fsync) failed: appends are refused until restart."},
			func() float64 { return b2f(l.Failure() != nil) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "consentledger_trillian", Help: "1 when the log's source of truth is Trillian (serve --trillian)."},
			func() float64 { return b2f(l.RemoteStats().Enabled) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "consentledger_trillian_root_mismatches_total", Help: "Checks where Trillian's root (or a stored checkpoint) differed from the ledger's: nothing was signed. An alarm."},
			func() float64 { return float64(l.RemoteStats().RootMismatches) }),
	)
	return m
}

// refused counts one call refused by the overload limits.
func (m *metrics) refused(cause string) { m.overload.WithLabelValues(cause).Inc() }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// decision counts one recorded send decision.
func (m *metrics) decision(allow bool, reasons []string) {
	result := "deny"
	if allow {
		result = "allow"
	}
	for _, r := range reasons {
		code, _, _ := strings.Cut(r, ":")
		m.decisions.WithLabelValues(result, code).Inc()
	}
}

// canceled maps the error of a call whose client went away (it cancelled,
// reset the stream or hung up) to canceled, whatever the handler made of
// it: that is the client's doing, not a server failure.
func canceled(ctx context.Context, err error) error {
	if err == nil || connect.CodeOf(err) == connect.CodeCanceled {
		return err
	}
	if errors.Is(ctx.Err(), context.Canceled) || errors.Is(err, context.Canceled) {
		return connect.NewError(connect.CodeCanceled, fmt.Errorf("the client cancelled the request: %w", err))
	}
	return err
}

func (m *metrics) observe(procedure string, start time.Time, err error) {
	code := "ok"
	if err != nil {
		c := connect.CodeOf(err)
		code = c.String()
		switch c {
		case connect.CodeInternal, connect.CodeUnknown:
			m.log.Error("request failed", "procedure", procedure, "err", err)
		case connect.CodeCanceled:
			m.log.Debug("request cancelled by the client", "procedure", procedure, "err", err)
		}
	}
	m.requests.WithLabelValues(procedure, code).Inc()
	m.latency.WithLabelValues(procedure).Observe(time.Since(start).Seconds())
}

// interceptor records every RPC's code and latency.
func (m *metrics) interceptor() connect.Interceptor { return metricsInterceptor{m} }

type metricsInterceptor struct{ m *metrics }

func (i metricsInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		resp, err := next(ctx, req)
		err = canceled(ctx, err)
		i.m.observe(req.Spec().Procedure, start, err)
		return resp, err
	}
}

func (i metricsInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i metricsInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		err := canceled(ctx, next(ctx, conn))
		i.m.observe(conn.Spec().Procedure, start, err)
		return err
	}
}

// node registers the standby-node gauges: role, lease holder, replication
// lag and takeovers.
func (m *metrics) node(n *node) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "consentledger_leader", Help: "1 on the leader (holds the lease and writes), 0 on a standby."},
			func() float64 { return b2f(n.leader.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "consentledger_takeovers_total", Help: "Times this node became the leader."},
			func() float64 { return float64(n.l.Takeovers()) }),
		&lagCollector{n: n,
			entries: prometheus.NewDesc("consentledger_replication_lag_entries", "Entries Trillian has integrated that this node has not applied yet.", nil, nil),
			seconds: prometheus.NewDesc("consentledger_replication_lag_seconds", "While this node is behind Trillian, the age of the last entry it applied (0 when caught up).", nil, nil)},
	)
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "consentledger_lease_term", Help: "Term of the leader lease last seen (the holder is in consentledger_lease_holder_info)."},
		func() float64 { return float64(n.Holder().Term) }))
	m.reg.MustRegister(&holderCollector{n: n, desc: prometheus.NewDesc("consentledger_lease_holder_info", "The leader lease's holder as last seen (value 1).", []string{"node", "url"}, nil)})
}

// lagCollector exports the replication lag in entries and seconds from
// one reading of Trillian per scrape.
type lagCollector struct {
	n                *node
	entries, seconds *prometheus.Desc
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.entries; ch <- c.seconds }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	entries, seconds := c.n.lag()
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(entries))
	ch <- prometheus.MustNewConstMetric(c.seconds, prometheus.GaugeValue, seconds)
}

// holderCollector exports the lease holder as labels.
type holderCollector struct {
	n    *node
	desc *prometheus.Desc
}

func (c *holderCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *holderCollector) Collect(ch chan<- prometheus.Metric) {
	h := c.n.Holder()
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1, h.Node, h.URL)
}
