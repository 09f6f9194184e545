package verifier

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestFirstDifference(t *testing.T) {
	tests := []struct {
		got, want    string
		path, gv, wv string
		differ       bool
	}{
		{`{"a":1,"b":[1,2]}`, `{"b":[1,2],"a":1}`, "", "", "", false},
		{`{"a":1.0}`, `{"a":1}`, "a", "1.0", "1", true},
		{`{"a":{"b":"x"}}`, `{"a":{"b":"y"}}`, "a.b", `"x"`, `"y"`, true},
		{`{"a":{}}`, `{"a":{"b":1}}`, "a.b", "absent", "1", true},
		{`{"a":{"c":1}}`, `{"a":{}}`, "a.c", "1", "absent", true},
		{`{"l":[1]}`, `{"l":[1,2]}`, "l", "1 elements", "2 elements", true},
		{`{"l":[{"x":true}]}`, `{"l":[{"x":false}]}`, "l[0].x", "true", "false", true},
		{`{"a":"b","z":1}`, `{"a":"c","z":2}`, "a", `"b"`, `"c"`, true}, // the first in key order
		{`not json`, `{}`, "(the document)", "not json", "{}", true},
	}
	for _, tc := range tests {
		path, gv, wv, differ := firstDifference([]byte(tc.got), []byte(tc.want))
		if path != tc.path || gv != tc.gv || wv != tc.wv || differ != tc.differ {
			t.Errorf("firstDifference(%s, %s) = %q %q %q %v, want %q %q %q %v", tc.got, tc.want, path, gv, wv, differ, tc.path, tc.gv, tc.wv, tc.differ)
		}
	}
}

func TestNowProblem(t *testing.T) {
	rec := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		now  time.Time
		want string
	}{
		{rec, ""},
		{rec.Add(-59 * time.Second), ""},
		{rec.Add(time.Nanosecond), "after the decision was recorded"},
		{rec.Add(-6 * time.Hour), "earlier than the decision's recorded_at"},
	} {
		_, _, p := nowProblem(tc.now, rec)
		if (tc.want == "") != (p == "") || !strings.Contains(p, tc.want) {
			t.Errorf("nowProblem(%v) = %q, want %q", tc.now, p, tc.want)
		}
	}
}

// FuzzFirstDifference: two documents differ exactly when their decoded
// values do, and a document never differs from itself.
func FuzzFirstDifference(f *testing.F) {
	f.Add([]byte(`{"now":"2026-11-25T12:00:00Z","subject":{"consents":{"sms":{"marketing":{"status":"granted"}}}}}`), []byte(`{"now":"2026-11-25T12:00:00Z","subject":{"consents":{}}}`))
	f.Add([]byte(`[1,2,{"a":null}]`), []byte(`[1,2,{"a":false}]`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if _, _, _, differ := firstDifference(a, a); differ {
			if _, err := decodeJSON(a); err == nil {
				t.Fatalf("%q differs from itself", a)
			}
		}
		va, errA := decodeJSON(a)
		vb, errB := decodeJSON(b)
		if errA != nil || errB != nil {
			return
		}
		_, _, _, differ := firstDifference(a, b)
		if differ != !reflect.DeepEqual(va, vb) {
			t.Fatalf("firstDifference(%q, %q) differ=%v, decoded values equal=%v", a, b, differ, reflect.DeepEqual(va, vb))
		}
	})
}
