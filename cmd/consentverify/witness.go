package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/consentledger/consentledger/verifier"
)

// readWitnessKey resolves one --witness: a witness verifier key, or a file
// that holds one.
func readWitnessKey(v string) (string, error) {
	if _, err := verifier.ParseWitnesses([]string{v}, 0); err == nil {
		return strings.TrimSpace(v), nil
	}
	b, err := readFile(v, 4<<10)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("--witness %q is neither a witness verifier key (<name>+<hash>+<base64>) nor a file", v)
		}
		return "", fmt.Errorf("--witness: %w", err)
	}
	k := strings.TrimSpace(string(b))
	if _, err := verifier.ParseWitnesses([]string{k}, 0); err != nil {
		return "", fmt.Errorf("--witness file %s: %w", v, err)
	}
	return k, nil
}

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
