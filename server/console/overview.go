package console

import (
	"net/http"
	"strings"

	"connectrpc.com/connect"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/rpc"
)

// signatureLines returns the signers of a signed note (its "— name sig"
// lines): the operator's first, then any witnesses' cosignatures.
func signatureLines(note string) []string {
	_, sigs, ok := strings.Cut(note, "\n\n")
	if !ok {
		return nil
	}
	var names []string
	for _, l := range strings.Split(sigs, "\n") {
		if rest, ok := strings.CutPrefix(l, "— "); ok {
			name, _, _ := strings.Cut(rest, " ")
			names = append(names, name)
		}
	}
	return names
}

// overview shows what every role may see of the log, and each further
// section only when the API lets the role call what it needs.
func (c *Console) overview(w http.ResponseWriter, r *http.Request, p rpc.Principal) {
	ctx := c.callCtx(r, p)
	data := map[string]any{"Title": "Overview"}
	cp, err := c.api.log.GetCheckpoint(ctx, connect.NewRequest(&pb.GetCheckpointRequest{}))
	if err != nil && !forbidden(err) {
		c.failed(w, r, err)
		return
	}
	if err == nil {
		data["Checkpoint"] = cp.Msg
		if sigs := signatureLines(cp.Msg.Checkpoint); len(sigs) > 0 {
			data["Signer"], data["Witnesses"] = sigs[0], sigs[1:]
		}
	}
	if pol, err := c.api.policy.GetActivePolicy(ctx, connect.NewRequest(&pb.GetActivePolicyRequest{})); err == nil {
		data["Policy"] = pol.Msg
	} else if !forbidden(err) {
		c.failed(w, r, err)
		return
	}
	if br, err := c.api.breach.ListBreaches(ctx, connect.NewRequest(&pb.ListBreachesRequest{})); err == nil {
		var open []*pb.Breach
		for _, b := range br.Msg.Breaches {
			if b.Status != "closed" {
				open = append(open, b)
			}
		}
		data["OpenBreaches"], data["BreachesVisible"] = open, true
	} else if !forbidden(err) {
		c.failed(w, r, err)
		return
	}
	c.render(w, r, "overview", http.StatusOK, data)
}
