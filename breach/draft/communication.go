package draft

import (
	"strings"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// Communication drafts the Art. 34(2) communication to the persons
// concerned: plain language, the nature of the breach, the DPO or contact
// point (Art. 33(3)(b)), the likely consequences (c) and the measures (d);
// no entry indexes.
func Communication(b *pb.GetBreachResponse, o Options) (*Doc, error) {
	f, err := fold(b.Entries)
	if err != nil {
		return nil, err
	}
	d := f.detected
	unknown := o.tr("c_unknown")
	doc := &Doc{Title: o.tr("title_comm")}
	if n := b.Controller.GetName(); n != "" {
		doc.Intro = append(doc.Intro, o.tr("c_from")+": "+n)
	}
	doc.Intro = append(doc.Intro, o.tr("c_salutation"), o.tr("c_intro"))
	add := func(heading string, lines ...string) {
		doc.Blocks = append(doc.Blocks, Block{No: len(doc.Blocks) + 1, Heading: heading, Lines: lines})
	}
	add(o.tr("c_what"), d.Description, o.tr("c_when")+" "+ts(d.DetectedAt.AsTime())+".")
	data := strings.Join(d.DataCategories, ", ")
	add(o.tr("c_data"), orText(data, unknown))
	add(o.tr("c_consequences"), orText(d.LikelyConsequences, unknown))
	measures := []string{orText(d.Measures, unknown)}
	add(o.tr("c_measures"), measures...)
	contact := unknown
	if p := b.Contact; p != nil {
		label := o.tr("contact_point")
		if p.Kind == "dpo" {
			label = o.tr("dpo")
		}
		contact = label + ": " + joinNonEmpty(", ", p.Name, p.Email, p.Phone)
	}
	add(o.tr("c_contact"), o.tr("c_ask"), contact)
	doc.MissingHeading, doc.AppendixHeading = o.tr("missing"), o.tr("appendix")
	return doc, nil
}
