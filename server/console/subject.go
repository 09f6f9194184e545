package console

import (
	"net/http"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/rpc"
)

// subjectOf builds the API's Subject from a form's kind and value.
func subjectOf(kind, value string) *pb.Subject {
	switch kind {
	case "email":
		return &pb.Subject{Id: &pb.Subject_Email{Email: value}}
	case "external_id":
		return &pb.Subject{Id: &pb.Subject_ExternalId{ExternalId: value}}
	}
	return &pb.Subject{Id: &pb.Subject_Phone{Phone: value}}
}

// subject looks a person up by a POSTed form, so a phone number or e-mail
// address never lands in a URL, a browser history or an access log.
func (c *Console) subject(w http.ResponseWriter, r *http.Request, p rpc.Principal) {
	if !c.gate(w, r, p, "/console/subject") {
		return
	}
	data := map[string]any{"Title": "Subject", "Form": map[string]string{"kind": "phone"}, "Errors": map[string]string{},
		"CanEvidence": rpc.Allowed(c.role(p), "/consentledger.v1.LogService/GetEvidence")}
	if r.Method != http.MethodPost {
		c.render(w, r, "subject", http.StatusOK, data)
		return
	}
	kind, value := r.PostFormValue("kind"), strings.TrimSpace(r.PostFormValue("value"))
	data["Form"] = map[string]string{"kind": kind, "value": value}
	res, err := c.api.consent.GetTimeline(c.callCtx(r, p), connect.NewRequest(&pb.GetTimelineRequest{Subject: subjectOf(kind, value)}))
	if err != nil {
		e := asAPIError(err)
		if e.Status != http.StatusUnprocessableEntity {
			c.failed(w, r, err)
			return
		}
		data["Errors"] = map[string]string{"value": e.Message}
		c.render(w, r, "subject", e.Status, data)
		return
	}
	data["Result"], data["Searched"] = res.Msg, true
	c.render(w, r, "subject", http.StatusOK, data)
}

// evidence downloads the evidence bundle of one send decision.
func (c *Console) evidence(w http.ResponseWriter, r *http.Request, p rpc.Principal) {
	index, err := strconv.ParseUint(r.PathValue("index"), 10, 64)
	if err != nil {
		c.render(w, r, "error", http.StatusBadRequest, map[string]any{"Title": "Bad entry index", "Message": "The evidence link names no entry index."})
		return
	}
	res, err := c.api.log.GetEvidence(c.callCtx(r, p), connect.NewRequest(&pb.GetEvidenceRequest{DecisionIndex: index}))
	if err != nil {
		c.failed(w, r, err)
		return
	}
	b, err := protojson.MarshalOptions{Multiline: true}.Marshal(res.Msg.Bundle)
	if err != nil {
		c.failed(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="evidence-`+strconv.FormatUint(index, 10)+`.json"`)
	w.Write(append(b, '\n'))
}
