package console

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"

	"connectrpc.com/connect"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/rpc"
)

// policyData is the policy page: the active files and, for the legal role,
// the DryRun and ImpactReport forms.
func (c *Console) policyData(r *http.Request, p rpc.Principal) (map[string]any, error) {
	res, err := c.api.policy.GetActivePolicy(c.callCtx(r, p), connect.NewRequest(&pb.GetActivePolicyRequest{}))
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"Title": "Policy", "Active": res.Msg,
		"CanDraft": rpc.Allowed(c.role(p), "/consentledger.v1.PolicyService/DryRun"),
		"Form":     map[string]string{"kind": "phone", "channel": "CHANNEL_WHATSAPP", "purpose": "marketing", "category": "marketing"},
		"Errors":   map[string]string{},
		"Channels": []string{"CHANNEL_WHATSAPP", "CHANNEL_SMS", "CHANNEL_RCS", "CHANNEL_EMAIL"},
	}, nil
}

func (c *Console) policy(w http.ResponseWriter, r *http.Request, p rpc.Principal) {
	if !c.gate(w, r, p, "/console/policy") {
		return
	}
	data, err := c.policyData(r, p)
	if err != nil {
		c.failed(w, r, err)
		return
	}
	c.render(w, r, "policy", http.StatusOK, data)
}

// dryRun evaluates the active policy for a send described on the form;
// DryRun records nothing.
func (c *Console) dryRun(w http.ResponseWriter, r *http.Request, p rpc.Principal) {
	if !c.gate(w, r, p, "/console/policy") {
		return
	}
	data, err := c.policyData(r, p)
	if err != nil {
		c.failed(w, r, err)
		return
	}
	form := map[string]string{}
	for _, f := range []string{"kind", "value", "channel", "purpose", "category", "provider", "region"} {
		form[f] = strings.TrimSpace(r.PostFormValue(f))
	}
	data["Form"] = form
	req := &pb.DecideRequest{
		Subject: subjectOf(form["kind"], form["value"]), Channel: pb.Channel(pb.Channel_value[form["channel"]]),
		Purpose: form["purpose"], Category: form["category"],
	}
	if form["provider"] != "" || form["region"] != "" {
		req.Provider = &pb.Provider{Name: form["provider"], Region: form["region"]}
	}
	res, err := c.api.policy.DryRun(c.callCtx(r, p), connect.NewRequest(&pb.DryRunRequest{Request: req}))
	if err != nil {
		e := asAPIError(err)
		if e.Status != http.StatusUnprocessableEntity {
			c.failed(w, r, err)
			return
		}
		data["Errors"] = map[string]string{fieldOf(e.Field): e.Message}
		c.render(w, r, "policy", e.Status, data)
		return
	}
	data["DryRun"] = res.Msg
	c.render(w, r, "policy", http.StatusOK, data)
}

// fieldOf maps an API field name to the form's input.
func fieldOf(apiField string) string {
	f := strings.TrimPrefix(strings.TrimPrefix(apiField, "request."), "subject.")
	switch {
	case f == "phone" || f == "email" || f == "external_id" || strings.HasPrefix(apiField, "subject"):
		return "value"
	case strings.HasPrefix(f, "provider"):
		return "provider"
	case f == "channel" || f == "purpose" || f == "category":
		return f
	}
	return "dryrun"
}

// impact replays past decisions against an uploaded draft policy.
func (c *Console) impact(w http.ResponseWriter, r *http.Request, p rpc.Principal) {
	if !c.gate(w, r, p, "/console/policy") {
		return
	}
	data, err := c.policyData(r, p)
	if err != nil {
		c.failed(w, r, err)
		return
	}
	var files []*pb.PolicyFile
	if r.MultipartForm != nil {
		for _, fh := range r.MultipartForm.File["files"] {
			f, err := fh.Open()
			if err != nil {
				c.failed(w, r, err)
				return
			}
			b, err := io.ReadAll(f)
			f.Close()
			if err != nil {
				c.failed(w, r, err)
				return
			}
			files = append(files, &pb.PolicyFile{Name: filepath.Base(fh.Filename), Content: string(b)})
		}
	}
	if len(files) == 0 {
		data["Errors"] = map[string]string{"files": "choose the draft's .rego files and data.json"}
		c.render(w, r, "policy", http.StatusUnprocessableEntity, data)
		return
	}
	res, err := c.api.policy.ImpactReport(c.callCtx(r, p), connect.NewRequest(&pb.ImpactReportRequest{Files: files}))
	if err != nil {
		e := asAPIError(err)
		if e.Status == http.StatusUnprocessableEntity || e.Status == http.StatusConflict {
			data["Errors"] = map[string]string{"files": e.Message}
			c.render(w, r, "policy", e.Status, data)
			return
		}
		c.failed(w, r, err)
		return
	}
	data["Impact"] = res.Msg
	c.render(w, r, "policy", http.StatusOK, data)
}
