package verifier

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/consentledger/consentledger/ledger/state"
)

// DefaultReplayTimeout bounds one policy evaluation when [Options] names no
// other bound: a policy that does not finish within it fails the check
// that replays it, instead of hanging the verifier.
const DefaultReplayTimeout = 5 * time.Second

// Options configure a verification. The zero value means the defaults:
// each replay bounded by DefaultReplayTimeout, no witness required.
type Options struct {
	// ReplayTimeout bounds each policy evaluation; 0 means
	// DefaultReplayTimeout.
	ReplayTimeout time.Duration
	// Witnesses, if set, also require the witness quorum of these pinned
	// witness keys (see [VerifyEvidenceWitnessed], [AuditWitnessed]).
	Witnesses *Witnesses
}

func (l Options) replayTimeout() time.Duration {
	if l.ReplayTimeout <= 0 {
		return DefaultReplayTimeout
	}
	return l.ReplayTimeout
}

// recordedNow returns the `now` of a recorded policy input.
func recordedNow(input []byte) (time.Time, error) {
	var doc struct {
		Now *string `json:"now"`
	}
	if err := json.Unmarshal(input, &doc); err != nil {
		return time.Time{}, fmt.Errorf("the input is not a JSON object: %w", err)
	}
	if doc.Now == nil {
		return time.Time{}, fmt.Errorf("the input has no now")
	}
	t, err := time.Parse(time.RFC3339Nano, *doc.Now)
	if err != nil {
		return time.Time{}, fmt.Errorf("the input's now %q is not an RFC 3339 time", *doc.Now)
	}
	return t, nil
}

// nowProblem says what is wrong with an input's now for a decision
// recorded at recordedAt: it must not be after it, nor more than
// state.MaxInputLag before it. It returns "" if nothing is.
func nowProblem(now, recordedAt time.Time) (got, want, problem string) {
	switch {
	case now.After(recordedAt):
		return fmtGoTime(now), "at or before " + fmtGoTime(recordedAt),
			"the input's now is after the decision was recorded: the policy was told a later time than the ledger's clock"
	case recordedAt.Sub(now) > state.MaxInputLag:
		return fmtGoTime(now), fmt.Sprintf("at most %s before %s", state.MaxInputLag, fmtGoTime(recordedAt)),
			"the input's now is earlier than the decision's recorded_at by more than the bound the server keeps to: the policy was told another time"
	}
	return "", "", ""
}

// firstDifference compares two JSON documents by value (key order and
// number spelling aside) and returns the path of the first difference, in
// key order, with both values; ok is false if they are equal.
func firstDifference(got, want []byte) (path, gotVal, wantVal string, ok bool) {
	g, err1 := decodeJSON(got)
	w, err2 := decodeJSON(want)
	if err1 != nil || err2 != nil {
		return "(the document)", short(got), short(want), !bytes.Equal(got, want)
	}
	return diffJSON("", g, w)
}

func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

func diffJSON(path string, g, w any) (string, string, string, bool) {
	gm, gIsMap := g.(map[string]any)
	wm, wIsMap := w.(map[string]any)
	if gIsMap && wIsMap {
		keys := make([]string, 0, len(gm)+len(wm))
		for k := range gm {
			keys = append(keys, k)
		}
		for k := range wm {
			if _, ok := gm[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			gv, gok := gm[k]
			wv, wok := wm[k]
			p := joinPath(path, k)
			switch {
			case !gok:
				return p, "absent", jsonText(wv), true
			case !wok:
				return p, jsonText(gv), "absent", true
			}
			if p, a, b, ok := diffJSON(p, gv, wv); ok {
				return p, a, b, true
			}
		}
		return "", "", "", false
	}
	ga, gIsArr := g.([]any)
	wa, wIsArr := w.([]any)
	if gIsArr && wIsArr {
		for i := range min(len(ga), len(wa)) {
			if p, a, b, ok := diffJSON(fmt.Sprintf("%s[%d]", path, i), ga[i], wa[i]); ok {
				return p, a, b, true
			}
		}
		if len(ga) != len(wa) {
			return path, fmt.Sprintf("%d elements", len(ga)), fmt.Sprintf("%d elements", len(wa)), true
		}
		return "", "", "", false
	}
	if gt, wt := jsonText(g), jsonText(w); gt != wt {
		return orRoot(path), gt, wt, true
	}
	return "", "", "", false
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(p string) string {
	if p == "" {
		return "(the document)"
	}
	return p
}

func jsonText(v any) string {
	if n, ok := v.(json.Number); ok {
		return n.String()
	}
	b, _ := json.Marshal(v)
	return short(b)
}

func short(b []byte) string {
	s := string(b)
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
