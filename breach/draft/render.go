package draft

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"strings"

	"github.com/go-pdf/fpdf"
)

// Markdown writes the draft as Markdown: numbered blocks of plain text.
func (d *Doc) Markdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", d.Title)
	for _, l := range d.Intro {
		fmt.Fprintf(&b, "%s  \n", l)
	}
	b.WriteString("\n")
	if len(d.Missing) > 0 {
		fmt.Fprintf(&b, "## %s\n\n", d.MissingHeading)
		for _, m := range d.Missing {
			fmt.Fprintf(&b, "- %s\n", m)
		}
		b.WriteString("\n")
	}
	for _, bl := range d.Blocks {
		fmt.Fprintf(&b, "## %d. %s\n\n", bl.No, bl.Heading)
		for _, l := range bl.Lines {
			fmt.Fprintf(&b, "%s  \n", l)
		}
		b.WriteString("\n")
	}
	if len(d.Appendix) > 0 {
		fmt.Fprintf(&b, "## %s\n\n", d.AppendixHeading)
		for _, a := range d.Appendix {
			fmt.Fprintf(&b, "- %s\n", a)
		}
	}
	_, err := io.WriteString(w, strings.TrimRight(b.String(), "\n")+"\n")
	return err
}

var page = template.Must(template.New("draft").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>body{font-family:sans-serif;max-width:50em;margin:2em auto}h2{font-size:1.1em;margin-top:1.5em}.missing{background:#fff3cd;padding:.5em 1em}</style>
</head><body>
<h1>{{.Title}}</h1>
<p>{{range .Intro}}{{.}}<br>{{end}}</p>
{{if .Missing}}<section class="missing"><h2>{{.MissingHeading}}</h2><ul>{{range .Missing}}<li>{{.}}</li>{{end}}</ul></section>{{end}}
{{range .Blocks}}<section><h2>{{.No}}. {{.Heading}}</h2><p>{{range .Lines}}{{.}}<br>{{end}}</p></section>
{{end}}{{if .Appendix}}<section><h2>{{.AppendixHeading}}</h2><ul>{{range .Appendix}}<li>{{.}}</li>{{end}}</ul></section>{{end}}
</body></html>
`))

// HTML writes the draft as one HTML page (escaped by html/template).
func (d *Doc) HTML(w io.Writer) error { return page.Execute(w, d) }

// PDF writes the draft as an A4 PDF with fpdf's core fonts (text in
// Windows-1252, which covers German).
func (d *Doc) PDF(w io.Writer) error {
	p := fpdf.New("P", "mm", "A4", "")
	p.SetMargins(20, 20, 20)
	p.SetAutoPageBreak(true, 20)
	tr := p.UnicodeTranslatorFromDescriptor("")
	p.AddPage()
	p.SetFont("Helvetica", "B", 14)
	p.MultiCell(0, 7, tr(d.Title), "", "L", false)
	p.Ln(3)
	body := func(lines []string) {
		p.SetFont("Helvetica", "", 10)
		for _, l := range lines {
			p.MultiCell(0, 5, tr(l), "", "L", false)
		}
		p.Ln(2)
	}
	heading := func(s string) {
		p.SetFont("Helvetica", "B", 11)
		p.MultiCell(0, 6, tr(s), "", "L", false)
	}
	body(d.Intro)
	if len(d.Missing) > 0 {
		heading(d.MissingHeading)
		var ls []string
		for _, m := range d.Missing {
			ls = append(ls, "- "+m)
		}
		body(ls)
	}
	for _, bl := range d.Blocks {
		heading(fmt.Sprintf("%d. %s", bl.No, bl.Heading))
		body(bl.Lines)
	}
	if len(d.Appendix) > 0 {
		heading(d.AppendixHeading)
		body(d.Appendix)
	}
	var buf bytes.Buffer
	if err := p.Output(&buf); err != nil {
		return fmt.Errorf("render the PDF: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// Write writes the draft in format "md", "html" or "pdf".
func (d *Doc) Write(w io.Writer, format string) error {
	switch format {
	case "", "md":
		return d.Markdown(w)
	case "html":
		return d.HTML(w)
	case "pdf":
		return d.PDF(w)
	}
	return fmt.Errorf("format %q is not md, html or pdf", format)
}
