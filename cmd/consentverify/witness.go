package main

import (
	"fmt"
	"os"

	"github.com/consentledger/consentledger/export"
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

// witnessReport prints an audit's report with the witness check of the
// export's checkpoint when witness keys were given; done is false when
// there is nothing to add (the caller prints as usual).
func (c *common) witnessReport(text func() string, rep any, file, vkey string, auditErr error) (int, bool) {
	if c.witnesses == nil || auditErr != nil {
		return 0, false
	}
	f, err := os.Open(file)
	if err != nil {
		return errorWithHint(2, err.Error(), exportHint), true
	}
	defer f.Close()
	er, err := export.NewReader(f)
	if err != nil {
		return errorWithHint(2, fmt.Sprintf("%s: %v", file, err), exportHint), true
	}
	return c.printWitnessed(text, rep, er.Checkpoint, vkey, "every entry of this export"), true
}
