package main

import (
	"github.com/consentledger/consentledger/verifier"
)

// witnessed is a report with its witness part, for --json.
type witnessed struct {
	Report  any                     `json:"report"`
	Witness *verifier.WitnessReport `json:"witness"`
}

// printWitnessed checks the pinned witnesses' cosignatures on the signed
// note raw, prints the report with its witness part, and returns the exit
// code.
func (c *common) printWitnessed(text func() string, rep any, raw []byte, vkey, subject string) int {
	key, err := verifier.ParseKey(vkey)
	if err != nil {
		return errorWithHint(2, err.Error(), keyHint)
	}
	wr, werr := c.witnesses.CheckpointWitnesses(raw, key)
	if wr == nil {
		c.report(text, rep)
		return verdict(werr, "")
	}
	c.report(func() string { return text() + wr.Text(subject) }, witnessed{Report: rep, Witness: wr})
	return verdict(werr, "")
}
