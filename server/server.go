package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/ledger/trillianlog"
	"github.com/consentledger/consentledger/policies"
	"github.com/consentledger/consentledger/rpc"
	"github.com/consentledger/consentledger/server/console"
)

// ShutdownTimeout bounds how long a graceful stop waits for in-flight requests.
const ShutdownTimeout = 30 * time.Second

// Run serves until ctx ends, then stops gracefully. ready, if not nil, is
// called with the address listened on (useful with port 0) once the server
// accepts connections.
func Run(ctx context.Context, cfg Config, log *slog.Logger, ready func(addr string)) error {
	if log == nil {
		log = slog.Default()
	}
	auth, err := cfg.check()
	if err != nil {
		return err
	}
	reserve := cfg.DiskReserveMiB << 20
	if cfg.DiskReserveMiB < 0 {
		reserve = -1
	}
	lopts := ledger.Options{Origin: cfg.Origin, Logger: log, Now: cfg.Now, DiskReserve: reserve}
	var nd *node
	var remote *trillianlog.Log
	defer func() {
		if nd != nil {
			nd.release() // after the ledger closed: its last write returned
		}
	}()
	if cfg.Storage.Enabled() {
		remote, err = trillianlog.Open(ctx, trillianlog.Config{Trillian: cfg.Storage.Trillian, Tree: cfg.Storage.Tree, SQL: cfg.Storage.SQL})
		if err != nil {
			return fmt.Errorf("storage on Trillian: %w", err)
		}
		defer remote.Close()
		lopts.Remote = remote
		lopts.Standby = true // every node starts as a standby and takes the lease (node.go)
		log.Info("log on Trillian", "trillian", cfg.Storage.Trillian, "tree", cfg.Storage.Tree)
	}
	l, err := ledger.Open(cfg.DataDir, lopts)
	if err != nil {
		return err
	}
	defer func() {
		if err := l.Close(); err != nil {
			log.Error("close ledger", "err", err)
		}
	}()
	if remote != nil {
		advertise := cfg.Advertise
		if advertise == "" {
			advertise = "http://" + cfg.Addr
		}
		nd = newNode(l, remote, advertise, cfg.LeaseClock, log)
		nd.step(ctx) // a lone node (or the first) leads before it publishes policies
		nodeCtx, stopNode := context.WithCancel(ctx)
		nodeDone := make(chan struct{})
		go func() { defer close(nodeDone); nd.run(nodeCtx) }()
		defer func() { stopNode(); <-nodeDone }()
	}
	wit, stopWitnesses, err := startWitnesses(ctx, cfg, l, log)
	if err != nil {
		return err
	}
	defer stopWitnesses()
	m := newMetrics(l, log)
	if nd != nil {
		m.node(nd)
	}
	// Witness timestamps are on the witnesses' clocks: ages use the real one.
	m.witnesses(wit, nil)
	svc, err := rpc.New(ctx, rpc.Options{Ledger: l, Logger: log, OnDecision: m.decision, Now: cfg.Now, DataDir: cfg.DataDir,
		Contact: cfg.helpContact(), Witnesses: witnessInfo(wit), WitnessQuorum: cfg.WitnessQuorum,
		MaxBackdate: cfg.MaxBackdate, DraftTimeout: cfg.DraftTimeout,
		Org: cfg.org(), RequirePublishedNotice: cfg.RequirePublishedNotice})
	if err != nil {
		return err
	}
	if cfg.PoliciesDir != "" && l.IsStandby() {
		log.Info("standby: the leader publishes policies; not publishing " + cfg.PoliciesDir)
	} else if cfg.PoliciesDir != "" {
		files, err := policies.LoadDir(cfg.PoliciesDir)
		if err != nil {
			return fmt.Errorf("policies: %w", err)
		}
		sys := rpc.WithPrincipal(ctx, rpc.Principal{Name: "system", Role: rpc.RoleAdmin})
		ref, digest, err := svc.Publish(sys, files, "published at start from "+cfg.PoliciesDir, "")
		if err != nil {
			return fmt.Errorf("the policies in %s cannot be activated: %w", cfg.PoliciesDir, err)
		}
		log.Info("policy active", "entry", ref.Index, "digest", digest)
	}

	interceptors := []connect.Interceptor{m.interceptor()}
	if auth != nil {
		interceptors = append(interceptors, rpc.NewAuthInterceptor(auth))
	}
	ol := newOverload(cfg.MaxInFlight, cfg.OverloadWait, cfg.Principals, m)
	defer ol.stop()
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "consentledger_in_flight", Help: "Unary calls in flight (bounded by max_in_flight)."},
		func() float64 { return float64(ol.inFlight()) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "consentledger_in_flight_limit", Help: "The bound on unary calls in flight in force: max_in_flight, or less while calls are refused for want of a slot (adaptive)."},
		func() float64 { return float64(ol.limit()) }))
	interceptors = append(interceptors, ol, newWatchLimiter(cfg.WatchPerPrincipal, cfg.WatchPerConnection))
	opts := []connect.HandlerOption{
		connect.WithInterceptors(interceptors...),
		connect.WithReadMaxBytes(cfg.MaxRequestBytes),
		// Answers are small; compressing them costs more than it saves.
		connect.WithCompressMinBytes(16 << 10),
		connect.WithCodec(rpc.JSONCodec{}),
		connect.WithCodec(rpc.ProtoCodec{}),
	}
	mux := http.NewServeMux()
	names := svc.Mount(mux, opts...)
	ol.unary = unaryProcedures(names) // what the guard bounds
	checker := grpchealth.NewStaticChecker(names...)
	mux.Handle(grpchealth.NewHandler(healthChecker{static: checker, l: l}))
	// Reflection and metrics: on the API port only to authenticated callers
	// (guard), and without a token on --metrics-addr.
	meta := http.NewServeMux()
	reflector := grpcreflect.NewStaticReflector(names...)
	for _, mx := range []*http.ServeMux{mux, meta} {
		mx.Handle(grpcreflect.NewHandlerV1(reflector))
		mx.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	}
	metricsHandler := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	mux.Handle("/metrics", metricsHandler)
	meta.Handle("/metrics", metricsHandler)
	key, err := console.KeyFromDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	con, err := console.New(console.Options{API: mux, Auth: auth, Key: key, Secure: cfg.TLS != nil, Now: cfg.Now, Logger: log})
	if err != nil {
		return err
	}
	mux.Handle("/console/", con)
	mux.Handle("/console", con)

	srv := &http.Server{
		// The Host allowlist comes first (DNS rebinding), then the bearer
		// token for the API (the console signs its users in itself).
		Handler:           console.HostGuard(cfg.hostNames(), guard(mux, auth, ol, cfg.BodyReadTimeout, cfg.WatchSendTimeout)),
		ConnContext:       withConnID,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	p := new(http.Protocols)
	p.SetHTTP1(true)
	if cfg.TLS == nil {
		p.SetUnencryptedHTTP2(true)
	} else {
		p.SetHTTP2(true)
		if srv.TLSConfig, err = tlsConfig(cfg.TLS); err != nil {
			return err
		}
	}
	srv.Protocols = p

	if cfg.MetricsAddr != "" {
		stopMeta, err := serveMeta(cfg.MetricsAddr, meta, log)
		if err != nil {
			return err
		}
		defer stopMeta()
	}
	if cfg.PprofAddr != "" {
		if err := servePprof(cfg.PprofAddr, log); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if auth != nil && srv.TLSConfig == nil && cfg.InsecureNoTLS {
		host, _, _ := net.SplitHostPort(cfg.Addr)
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			log.Warn("INSECURE: --insecure-no-tls: bearer tokens cross the network IN CLEAR; anyone on the path can read them and act as these principals. Configure tls: {cert, key}.", "addr", ln.Addr().String())
		}
	}
	if auth == nil {
		log.Warn("no --config with principals: serving WITHOUT authentication, on a loopback address only", "addr", ln.Addr().String())
	}
	log.Info("consentledger serving", "addr", ln.Addr().String(), "data", cfg.DataDir, "origin", l.Origin(),
		"log_size", l.Size(), "verifier_key", l.VerifierKey(), "tls", srv.TLSConfig != nil)
	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	if ready != nil {
		ready(ln.Addr().String())
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests")
	checker.SetStatus("", grpchealth.StatusNotServing)
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("shutdown", "err", err)
	}
	return nil
}

func tlsConfig(c *TLSConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, fmt.Errorf("tls: load certificate: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	if c.ClientCA != "" {
		pem, err := os.ReadFile(c.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("tls: read client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: %s holds no PEM certificate", c.ClientCA)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// serveMeta serves metrics and reflection, without a token, on addr.
func serveMeta(addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Protocols = p
	log.Info("metrics and reflection serving without a token", "addr", ln.Addr().String())
	go srv.Serve(ln)
	return func() { srv.Close() }, nil
}

// servePprof serves the Go profiler on a separate loopback listener.
func servePprof(addr string, log *slog.Logger) error {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--pprof %s: give a loopback address such as 127.0.0.1:6060", addr)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("pprof: %w", err)
	}
	log.Info("profiler serving", "addr", ln.Addr().String())
	go (&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}).Serve(ln)
	return nil
}
