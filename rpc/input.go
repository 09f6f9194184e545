package rpc

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// The policy input document (policies/README.md). encoding/json writes
// struct fields in order and map keys sorted, so the bytes are deterministic;
// they are recorded in the SendDecision and replayed by verifiers.
type policyInput struct {
	Now      string        `json:"now"`
	Request  inputRequest  `json:"request"`
	Subject  inputSubject  `json:"subject"`
	Breaches []inputBreach `json:"breaches"`
}

type inputRequest struct {
	Channel           string        `json:"channel"`
	Purpose           string        `json:"purpose"`
	Category          string        `json:"category"`
	Provider          inputProvider `json:"provider"`
	SubjectTimezone   string        `json:"subject_timezone"`
	ServiceWindowOpen bool          `json:"service_window_open"`
	MessageRef        string        `json:"message_ref"`
}

type inputProvider struct {
	Name   string `json:"name"`
	Region string `json:"region"`
}

type inputSubject struct {
	Known    bool                               `json:"known"`
	Country  string                             `json:"country"`
	Consents map[string]map[string]inputConsent `json:"consents"`
}

type inputConsent struct {
	Status            string  `json:"status"`
	GrantedAt         string  `json:"granted_at,omitempty"`
	Method            string  `json:"method,omitempty"`
	NoticeVersion     string  `json:"notice_version,omitempty"`
	DoubleOptIn       bool    `json:"double_opt_in"`
	ConfirmedAt       string  `json:"confirmed_at,omitempty"`
	WithdrawnAt       string  `json:"withdrawn_at,omitempty"`
	LastAllowedSendAt string  `json:"last_allowed_send_at,omitempty"`
	GrantIndex        *uint64 `json:"grant_index,omitempty"`
	ConfirmationIndex *uint64 `json:"confirmation_index,omitempty"`
	WithdrawalIndex   *uint64 `json:"withdrawal_index,omitempty"`
}

type inputBreach struct {
	BreachID   string   `json:"breach_id"`
	Status     string   `json:"status"`
	Channels   []string `json:"channels"`
	DetectedAt string   `json:"detected_at"`
}

func rfc3339(t interface{ AsTime() time.Time }) string {
	return t.AsTime().UTC().Format(time.RFC3339Nano)
}

func refIndex(r *pb.EntryRef) *uint64 {
	if r == nil {
		return nil
	}
	i := r.Index
	return &i
}

// buildInput returns the policy input for a send request, the subject's
// state (nil if none) and the open breaches, as JSON.
func buildInput(now time.Time, req *pb.SendRequest, known bool, st *pb.SubjectState, breaches []*pb.BreachState) ([]byte, error) {
	in := policyInput{
		Now: now.UTC().Format(time.RFC3339Nano),
		Request: inputRequest{
			Channel: ledger.ChannelName(req.Channel), Purpose: req.Purpose, Category: req.Category,
			Provider:        inputProvider{Name: req.GetProvider().GetName(), Region: req.GetProvider().GetRegion()},
			SubjectTimezone: req.SubjectTimezone, ServiceWindowOpen: req.ServiceWindowOpen, MessageRef: req.MessageRef,
		},
		Subject:  inputSubject{Known: known, Country: req.SubjectCountry, Consents: map[string]map[string]inputConsent{}},
		Breaches: []inputBreach{},
	}
	for _, cs := range st.GetConsents() {
		c := inputConsent{
			Status: cs.Status, Method: cs.Method, NoticeVersion: cs.NoticeVersion, DoubleOptIn: cs.DoubleOptIn,
			GrantIndex: refIndex(cs.Grant), ConfirmationIndex: refIndex(cs.Confirmation), WithdrawalIndex: refIndex(cs.Withdrawal),
		}
		if cs.GrantedAt != nil {
			c.GrantedAt = rfc3339(cs.GrantedAt)
		}
		if cs.ConfirmedAt != nil {
			c.ConfirmedAt = rfc3339(cs.ConfirmedAt)
		}
		if cs.WithdrawnAt != nil {
			c.WithdrawnAt = rfc3339(cs.WithdrawnAt)
		}
		if cs.LastAllowedSendAt != nil {
			c.LastAllowedSendAt = rfc3339(cs.LastAllowedSendAt)
		}
		ch := ledger.ChannelName(cs.Channel)
		if in.Subject.Consents[ch] == nil {
			in.Subject.Consents[ch] = map[string]inputConsent{}
		}
		in.Subject.Consents[ch][cs.Purpose] = c
	}
	for _, b := range breaches {
		ib := inputBreach{BreachID: b.BreachId, Status: b.Status, Channels: []string{}}
		if b.DetectedAt != nil {
			ib.DetectedAt = rfc3339(b.DetectedAt)
		}
		for _, c := range b.Channels {
			ib.Channels = append(ib.Channels, ledger.ChannelName(c))
		}
		in.Breaches = append(in.Breaches, ib)
	}
	out, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("encode policy input: %w", err)
	}
	return out, nil
}
