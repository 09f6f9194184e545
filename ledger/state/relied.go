package state

import pb "github.com/consentledger/consentledger/proto/consentledger/v1"

// ConsentPurpose is the purpose whose consent a send request needs:
// marketing for a message of category marketing, else the stated purpose
// (the default policy's consent_purpose).
func ConsentPurpose(req *pb.SendRequest) string {
	if req.GetCategory() == "marketing" {
		return "marketing"
	}
	return req.GetPurpose()
}

// ReliedOn returns the consent entries an allowed decision rests on: the
// grant (and its double opt-in confirmation) of the subject's granted
// consent for the request's channel and [ConsentPurpose]; nil for a denied
// decision or when there is no such consent. A granted consent has had no
// withdrawal since its grant: a withdrawal would have changed its status,
// and a new grant its grant.
//
// A send under a legal basis other than consent (contract, legal
// obligation) relies on no consent.
func ReliedOn(allow bool, req *pb.SendRequest, st *pb.SubjectState) []*pb.EntryRef {
	if !allow || (req.GetLegalBasis() != "" && req.GetLegalBasis() != "consent") {
		return nil
	}
	purpose := ConsentPurpose(req)
	for _, cs := range st.GetConsents() {
		if cs.Channel == req.GetChannel() && cs.Purpose == purpose && cs.Status == StatusGranted && cs.Grant != nil {
			out := []*pb.EntryRef{cs.Grant}
			if cs.Confirmation != nil {
				out = append(out, cs.Confirmation)
			}
			return out
		}
	}
	return nil
}
