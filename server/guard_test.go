package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	dto "github.com/prometheus/client_model/go"

	"github.com/consentledger/consentledger/ledger"
)

// Issue 11.2: a WatchEntries stream whose client stops reading is dropped
// after the send deadline instead of holding its buffers forever.
func TestWatchStreamDroppedWhenNotRead(t *testing.T) {
	for _, proto := range []string{"HTTP/1.1", "h2c"} {
		t.Run(proto, func(t *testing.T) {
			ended := make(chan error, 1)
			h := guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				chunk := bytes.Repeat([]byte("x"), 64<<10)
				for {
					if _, err := w.Write(chunk); err != nil {
						ended <- err
						return
					}
					w.(http.Flusher).Flush()
				}
			}), nil, nil, time.Second, 300*time.Millisecond)
			srv := httptest.NewUnstartedServer(h)
			srv.Config.Protocols = new(http.Protocols)
			srv.Config.Protocols.SetHTTP1(true)
			srv.Config.Protocols.SetUnencryptedHTTP2(true)
			srv.Start()
			defer srv.Close()
			tr := &http.Transport{Protocols: new(http.Protocols)}
			if proto == "h2c" {
				tr.Protocols.SetUnencryptedHTTP2(true)
			} else {
				tr.Protocols.SetHTTP1(true)
			}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Post(srv.URL+watchProcedure, "application/connect+proto", strings.NewReader(""))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close() // never read
			select {
			case err := <-ended:
				if err == nil {
					t.Fatal("the write failed without an error")
				}
			case <-time.After(20 * time.Second):
				t.Fatal("a stream whose client does not read was not dropped within 20 s (deadline 300ms)")
			}
		})
	}
}

// Issue 11.7: a call the client cancelled is counted as canceled and
// logged at debug, not as an internal error at ERROR.
func TestCanceledIsNotAnError(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l, err := ledger.Open(t.TempDir(), ledger.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	m := newMetrics(l, log)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	call := m.interceptor().WrapUnary(func(ctx context.Context, _ connect.AnyRequest) (connect.AnyResponse, error) {
		// What a handler makes of an evaluation stopped by the cancel.
		return nil, connect.NewError(connect.CodeInternal, errors.New("the active policy failed to decide: context canceled"))
	})
	req := connect.NewRequest(&struct{}{})
	_, err = call(ctx, req)
	if connect.CodeOf(err) != connect.CodeCanceled {
		t.Errorf("code %v, want canceled", connect.CodeOf(err))
	}
	var got dto.Metric
	if err := m.requests.WithLabelValues(req.Spec().Procedure, "canceled").Write(&got); err != nil || got.GetCounter().GetValue() != 1 {
		t.Errorf("requests counted as canceled: %v (%v), want 1", got.GetCounter().GetValue(), err)
	}
	if strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "level=DEBUG") {
		t.Errorf("log of a cancelled call, want one DEBUG line and no ERROR:\n%s", logs.String())
	}
}
