package console

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
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
	c.render(w, r, "breaches", http.StatusOK, c.breachesData(p, res.Msg.Breaches))
}

func (c *Console) breachesData(p rpc.Principal, list []*pb.Breach) map[string]any {
	return map[string]any{
		"Title": "Breaches", "Breaches": list,
		"CanReport": rpc.Allowed(c.role(p), "/consentledger.v1.BreachService/ReportBreach"),
		"Form":      map[string]string{"risk": "unknown"},
		"Errors":    map[string]string{},
		"Channels":  []string{"CHANNEL_WHATSAPP", "CHANNEL_SMS", "CHANNEL_RCS", "CHANNEL_EMAIL"},
		"Checked":   map[string]bool{},
	}
}

// report records a new breach (the breach role's first action): its
// detection time starts the Art. 33 clock.
func (c *Console) report(w http.ResponseWriter, r *http.Request, p rpc.Principal) {
	if !c.gate(w, r, p, "/console/breaches") {
		return
	}
	ctx := c.callCtx(r, p)
	form := map[string]string{}
	for _, f := range []string{"description", "detected_at", "risk", "data_categories", "subjects_estimate"} {
		form[f] = strings.TrimSpace(r.PostFormValue(f))
	}
	req := &pb.ReportBreachRequest{Description: form["description"], Risk: form["risk"]}
	checked := map[string]bool{}
	for _, ch := range r.PostForm["channels"] {
		checked[ch] = true
		req.Channels = append(req.Channels, pb.Channel(pb.Channel_value[ch]))
	}
	for _, dc := range strings.Split(form["data_categories"], ",") {
		if dc = strings.TrimSpace(dc); dc != "" {
			req.DataCategories = append(req.DataCategories, dc)
		}
	}
	var err error
	if form["subjects_estimate"] != "" {
		if req.SubjectsEstimate, err = strconv.ParseUint(form["subjects_estimate"], 10, 64); err != nil {
			err = connect.NewError(connect.CodeInvalidArgument, errors.New("subjects_estimate: must be a whole number of people"))
		}
	}
	if err == nil {
		if req.DetectedAt, err = formTime(form["detected_at"]); err != nil {
			err = connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("detected_at: %w", err))
		}
	}
	var res *connect.Response[pb.ReportBreachResponse]
	if err == nil {
		res, err = c.api.breach.ReportBreach(ctx, connect.NewRequest(req))
	}
	if err == nil {
		http.Redirect(w, r, "/console/breaches/"+res.Msg.BreachId+"?done=reported", http.StatusSeeOther)
		return
	}
	e := asAPIError(err)
	if e.Status != http.StatusUnprocessableEntity {
		c.failed(w, r, err)
		return
	}
	list, lerr := c.api.breach.ListBreaches(ctx, connect.NewRequest(&pb.ListBreachesRequest{}))
	if lerr != nil {
		c.failed(w, r, lerr)
		return
	}
	data := c.breachesData(p, list.Msg.Breaches)
	if e.Field == "" {
		e.Field = "form"
	}
	data["Form"], data["Checked"], data["Errors"] = form, checked, map[string]string{e.Field: e.Message}
	c.render(w, r, "breaches", e.Status, data)
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

func (c *Console) notifySubjects(w http.ResponseWriter, r *http.Request, p rpc.Principal) {
	c.actOnBreach(w, r, p, []string{"method", "subjects_notified", "subjects_notified_at"}, "subjects_notified_at", "subjects-notified", func(at *timestamppb.Timestamp) error {
		var n uint64
		if v := strings.TrimSpace(r.PostFormValue("subjects_notified")); v != "" {
			var err error
			if n, err = strconv.ParseUint(v, 10, 64); err != nil {
				return connect.NewError(connect.CodeInvalidArgument, errors.New("subjects_notified: must be a whole number of people"))
			}
		}
		_, err := c.api.breach.RecordSubjectNotification(c.callCtx(r, p), connect.NewRequest(&pb.RecordSubjectNotificationRequest{
			BreachId: r.PathValue("id"), Method: r.PostFormValue("method"), SubjectsNotified: n, NotifiedAt: at,
		}))
		if e := asAPIError(err); err != nil && e.Field == "notified_at" { // this form's field
			return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("subjects_notified_at: %s", e.Message))
		}
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
