package console

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/rpc"
)

func hexString(b []byte) string { return hex.EncodeToString(b) }

// deadlineInfo is how a page shows a breach's Art. 33 deadline: a text that
// says it (never colour alone), a status class, and for a live countdown
// the deadline the script ticks towards.
type deadlineInfo struct {
	Text, Class, Deadline string
	Live                  bool
}

func deadlineView(b *pb.Breach) deadlineInfo {
	switch {
	case b.AuthorityNotifiedAt != nil && b.NotifiedInTime:
		return deadlineInfo{Text: "notified in time", Class: "ok"}
	case b.AuthorityNotifiedAt != nil:
		return deadlineInfo{Text: "notified late", Class: "bad"}
	case b.Status == "closed":
		return deadlineInfo{Text: "closed without notification", Class: "muted"}
	case b.Deadline == nil:
		return deadlineInfo{Text: "no deadline", Class: "muted"}
	}
	d := deadlineInfo{Deadline: b.Deadline.AsTime().UTC().Format(time.RFC3339), Live: true}
	left := time.Duration(b.HoursRemaining * float64(time.Hour))
	if b.Overdue {
		d.Text, d.Class = "overdue by "+hoursMinutes(-left), "bad"
		return d
	}
	d.Text, d.Class = hoursMinutes(left)+" left", "warn"
	if left < 24*time.Hour {
		d.Class = "bad"
	}
	return d
}

func hoursMinutes(d time.Duration) string {
	d = d.Round(time.Minute)
	return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
}

func (c *Console) breaches(w http.ResponseWriter, r *http.Request, p rpc.Principal) {
	if !c.gate(w, r, p, "/console/breaches") {
		return
	}
	res, err := c.api.breach.ListBreaches(c.callCtx(r, p), connect.NewRequest(&pb.ListBreachesRequest{}))
	if err != nil {
		c.failed(w, r, err)
		return
	}
	c.render(w, r, "breaches", http.StatusOK, map[string]any{"Title": "Breaches", "Breaches": res.Msg.Breaches})
}

// breachData is the detail page of one breach, with the breach role's forms.
func (c *Console) breachData(r *http.Request, p rpc.Principal) (map[string]any, error) {
	id := r.PathValue("id")
	res, err := c.api.breach.ListBreaches(c.callCtx(r, p), connect.NewRequest(&pb.ListBreachesRequest{}))
	if err != nil {
		return nil, err
	}
	for _, b := range res.Msg.Breaches {
		if b.BreachId == id {
			return map[string]any{
				"Title": "Breach " + id, "B": b,
				"CanAct": rpc.Allowed(c.role(p), "/consentledger.v1.BreachService/RecordAuthorityNotification"),
				"Form":   map[string]string{"phase": "preliminary"},
				"Errors": map[string]string{},
			}, nil
		}
	}
	return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no breach %q: pick one from the list of breaches", id))
}

func (c *Console) breach(w http.ResponseWriter, r *http.Request, p rpc.Principal) {
	if !c.gate(w, r, p, "/console/breaches") {
		return
	}
	data, err := c.breachData(r, p)
	if err != nil {
		c.failed(w, r, err)
		return
	}
	data["Done"] = r.URL.Query().Get("done")
	c.render(w, r, "breach", http.StatusOK, data)
}

// formTime parses a datetime-local field (UTC); empty means now (nil).
func formTime(v string) (*timestamppb.Timestamp, error) {
	if v == "" {
		return nil, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return timestamppb.New(t), nil
		}
	}
	return nil, fmt.Errorf("must be a date and time in UTC like 2026-11-30T08:00")
}

// actOnBreach runs one breach action; on a rejection it shows the detail
// page again with the API's message next to the field and the input kept.
func (c *Console) actOnBreach(w http.ResponseWriter, r *http.Request, p rpc.Principal, form []string, timeField, done string, call func(at *timestamppb.Timestamp) error) {
	if !c.gate(w, r, p, "/console/breaches") {
		return
	}
	data, err := c.breachData(r, p)
	if err != nil {
		c.failed(w, r, err)
		return
	}
	kept := map[string]string{}
	for _, f := range form {
		kept[f] = r.PostFormValue(f)
	}
	data["Form"] = kept
	at, err := formTime(r.PostFormValue(timeField))
	if err == nil {
		err = call(at)
	} else {
		err = connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: %w", timeField, err))
	}
	if err != nil {
		e := asAPIError(err)
		if e.Field == "" {
			e.Field = "form"
		}
		data["Errors"] = map[string]string{e.Field: e.Message}
		data["Action"] = done
		c.render(w, r, "breach", e.Status, data)
		return
	}
	http.Redirect(w, r, "/console/breaches/"+r.PathValue("id")+"?done="+done, http.StatusSeeOther)
}

func (c *Console) notify(w http.ResponseWriter, r *http.Request, p rpc.Principal) {
	c.actOnBreach(w, r, p, []string{"authority", "reference", "phase", "notified_at", "delay_reason"}, "notified_at", "notified", func(at *timestamppb.Timestamp) error {
		_, err := c.api.breach.RecordAuthorityNotification(c.callCtx(r, p), connect.NewRequest(&pb.RecordAuthorityNotificationRequest{
			BreachId: r.PathValue("id"), Authority: r.PostFormValue("authority"), Reference: r.PostFormValue("reference"),
			Phase: r.PostFormValue("phase"), NotifiedAt: at, DelayReason: r.PostFormValue("delay_reason"),
		}))
		return err
	})
}

func (c *Console) closeBreach(w http.ResponseWriter, r *http.Request, p rpc.Principal) {
	c.actOnBreach(w, r, p, []string{"summary", "closed_at"}, "closed_at", "closed", func(at *timestamppb.Timestamp) error {
		_, err := c.api.breach.CloseBreach(c.callCtx(r, p), connect.NewRequest(&pb.CloseBreachRequest{
			BreachId: r.PathValue("id"), Summary: r.PostFormValue("summary"), ClosedAt: at,
		}))
		return err
	})
}
