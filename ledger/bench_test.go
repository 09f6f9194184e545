package ledger

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consentledger/consentledger/ledger/subject"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// benchDecision is a SendDecision entry of about 300 bytes once stored.
func benchDecision() *pb.Entry {
	e := decision(pb.Channel_CHANNEL_WHATSAPP, "marketing", true)
	d := e.GetSendDecision()
	d.Reasons = []string{"ok: consent for whatsapp/marketing granted"}
	d.Request.Provider = &pb.Provider{Name: "eu-bsp", Region: "EU"}
	d.Request.MessageRef = "msg-0000000000"
	d.Input = []byte(`{"now":"2026-11-29T10:00:00Z","request":{"channel":"whatsapp","purpose":"marketing"},"consent":{}}`)
	return e
}

// BenchmarkAppend measures group-committed, synced appends to Badger on disk
// by 64 concurrent appenders.
func BenchmarkAppend(b *testing.B) {
	for _, tc := range []struct {
		name  string
		entry func(i int) *Request
	}{
		{"decisions", func(i int) *Request {
			return &Request{Entry: benchDecision(), Subject: &subject.Identifier{Kind: subject.KindPhone, Value: fmt.Sprintf("+4917%08d", i%10000)}}
		}},
		{"plain", func(i int) *Request { return &Request{Entry: filler(220)} }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			l, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			// Warm up: create the subjects.
			for i := 0; i < 10000 && tc.name == "decisions"; i += 64 {
				var wg sync.WaitGroup
				for j := i; j < i+64 && j < 10000; j++ {
					wg.Add(1)
					go func() { defer wg.Done(); l.Append(context.Background(), tc.entry(j)) }()
				}
				wg.Wait()
			}
			var next atomic.Int64
			var sizeSum atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := 0; w < 64; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						r, err := l.Append(context.Background(), tc.entry(int(i)))
						if err != nil {
							b.Error(err)
							return
						}
						if i%1000 == 0 {
							data, _ := l.Entry(context.Background(), r.Index)
							sizeSum.Add(int64(len(data)))
						}
					}
				}()
			}
			wg.Wait()
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "entries/s")
			if st := l.Stats(); st.Batches > 0 {
				b.ReportMetric(float64(st.Entries)/float64(st.Batches), "entries/batch")
			}
			if n := int64(b.N) / 1000; n > 0 {
				b.ReportMetric(float64(sizeSum.Load())/float64(n), "bytes/entry")
			}
		})
	}
}

// BenchmarkAppendBatch measures AppendBatch on Badger on disk: 8 callers,
// each appending 100 send decisions a call (target: ≥ 250,000 entries/s).
func BenchmarkAppendBatch(b *testing.B) {
	const callers, per = 8, 100
	l, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 10000; i += per {
		reqs := make([]*Request, per)
		for j := range reqs {
			reqs[j] = &Request{Entry: grant(pb.Channel_CHANNEL_WHATSAPP, "marketing"), Subject: phone(i + j)}
		}
		if _, err := l.AppendBatch(context.Background(), reqs); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < callers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(per) - per
				if i >= int64(b.N) {
					return
				}
				reqs := make([]*Request, per)
				for j := range reqs {
					reqs[j] = &Request{Entry: benchDecision(), Subject: phone(int(i+int64(j)) % 10000)}
				}
				res, err := l.AppendBatch(context.Background(), reqs)
				if err != nil {
					b.Error(err)
					return
				}
				for _, r := range res {
					if r.Err != nil {
						b.Error(r.Err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	n := (int64(b.N) + per - 1) / per * per
	b.ReportMetric(float64(n)/el.Seconds(), "entries/s")
	if st := l.Stats(); st.Batches > 0 {
		b.ReportMetric(float64(st.Entries)/float64(st.Batches), "entries/batch")
	}
}
