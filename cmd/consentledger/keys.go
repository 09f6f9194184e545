package main

import (
	"strings"

	"github.com/consentledger/consentledger/ledger"
)

func init() {
	commands["keys"] = command{run: runKeys, summary: "rotate the checkpoint signing key (offline)"}
}

const keysUsage = `usage: consentledger keys rotate --data DIR    add a new signing key beside the current one
       consentledger keys retire --data DIR    stop signing with the old key(s) after the overlap`

// runKeys rotates or retires signing keys in a data directory. The server
// reads its keys at start, so it is restarted after each step.
func runKeys(args []string) int {
	if len(args) == 0 || (args[0] != "rotate" && args[0] != "retire") {
		return errorf(2, keysUsage, "keys takes rotate or retire")
	}
	fs := newFlagSet("keys " + args[0])
	data := fs.String("data", "", "data directory of the log")
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil || len(pos) > 0 || *data == "" {
		return usageError(keysUsage, err, pos)
	}
	if args[0] == "rotate" {
		vkey, err := ledger.RotateKeys(*data)
		if err != nil {
			return errorf(1, "", "%v", err)
		}
		stdoutln("new verifier key: " + vkey)
		stderrln("Restart the server: from then on every checkpoint is signed by the old and the new key.")
		stderrln("Give auditors the new key to pin beside the old one (consentledger pubkey --data " + *data + " prints both);")
		stderrln("once they have, run: consentledger keys retire --data " + *data)
		return 0
	}
	retired, err := ledger.RetireKeys(*data)
	if err != nil {
		return errorf(1, "", "%v", err)
	}
	stdoutln("retired: " + strings.Join(retired, "\n         "))
	stderrln("Restart the server: from then on checkpoints are signed by the new key only.")
	stderrln("verifier.key keeps the retired key(s): they still verify the checkpoints they signed.")
	return 0
}
