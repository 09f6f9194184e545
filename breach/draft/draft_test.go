package draft

import (
	"bytes"
	"flag"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/breach"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var detected = time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)

func tsAt(h float64) *timestamppb.Timestamp {
	return timestamppb.New(detected.Add(time.Duration(h * float64(time.Hour))))
}

func entry(i uint64, actor string, e *pb.Entry) *pb.BreachEntry {
	e.Index, e.Actor, e.RecordedAt = i, actor, tsAt(float64(i-10))
	return &pb.BreachEntry{Index: i, Entry: e}
}

// complete is a breach with every fact, assessed and with a step done.
func complete() *pb.GetBreachResponse {
	return &pb.GetBreachResponse{
		Breach:     &pb.Breach{BreachId: "brc-2026-07", Deadline: tsAt(72)},
		Controller: &pb.Organisation{Name: "Example Shop GmbH", Address: "Beispielstraße 1, 10115 Berlin", Role: "controller"},
		Contact:    &pb.ContactPerson{Kind: "dpo", Name: "Dr. Dana Schutz", Email: "dpo@example.com"},
		Authority:  &pb.Authority{Name: "Berliner Beauftragte für Datenschutz und Informationsfreiheit", Url: "https://www.datenschutz-berlin.de"},
		Entries: []*pb.BreachEntry{
			entry(12, "breach-desk", &pb.Entry{Event: &pb.Entry_BreachDetected{BreachDetected: &pb.BreachDetected{
				BreachId: "brc-2026-07", DetectedAt: tsAt(0), Description: "A backup of the SMS gateway's log was readable without login for two days.",
				BreachTypes: []string{"confidentiality"}, DataCategories: []string{"phone numbers", "message timestamps"},
				SubjectCategories: []string{"customers"}, SubjectsEstimate: 1200, RecordsEstimate: 48000,
				LikelyConsequences: "Unwanted calls or phishing messages to the phone numbers.", Measures: "Access closed, backup deleted, keys rotated.",
				OccurredFrom: tsAt(-50), OccurredTo: tsAt(-2), DiscoveredAt: tsAt(-3), HowFound: "The hosting provider's scan reported the open bucket.",
				Safeguards: "None on the backup; the live database is encrypted.", PlanVersion: breach.DefaultPlanVersion, ControllerRole: "controller",
			}}}),
			entry(14, "breach-desk", &pb.Entry{Event: &pb.Entry_BreachStepCompleted{BreachStepCompleted: &pb.BreachStepCompleted{
				BreachId: "brc-2026-07", StepId: "inform_dpo", CompletedAt: tsAt(0.5), Note: "told in person",
			}}}),
			entry(15, "breach-desk", &pb.Entry{Event: &pb.Entry_BreachAssessed{BreachAssessed: &pb.BreachAssessed{
				BreachId: "brc-2026-07", Level: "risk", Reasoning: "DSK short paper 18: limited likelihood, limited severity.", AssessedAt: tsAt(6),
			}}}),
		},
	}
}

// sparse is a breach with only a description: most facts are still to provide.
func sparse() *pb.GetBreachResponse {
	return &pb.GetBreachResponse{
		Breach: &pb.Breach{BreachId: "brc-late", Deadline: tsAt(72)},
		Entries: []*pb.BreachEntry{entry(30, "ops", &pb.Entry{Event: &pb.Entry_BreachDetected{BreachDetected: &pb.BreachDetected{
			BreachId: "brc-late", DetectedAt: tsAt(0), Description: "A laptop with an export of opt-in records was stolen.",
		}}})},
	}
}

// followed has an authority notification, then new facts.
func followed() *pb.GetBreachResponse {
	b := complete()
	b.Entries = append(b.Entries,
		entry(20, "breach-desk", &pb.Entry{Event: &pb.Entry_BreachAuthorityNotified{BreachAuthorityNotified: &pb.BreachAuthorityNotified{
			BreachId: "brc-2026-07", Authority: "BlnBDI", Reference: "BlnBDI-521.1234", Phase: "preliminary", NotifiedAt: tsAt(20),
		}}}),
		entry(22, "breach-desk", &pb.Entry{Event: &pb.Entry_BreachAssessed{BreachAssessed: &pb.BreachAssessed{
			BreachId: "brc-2026-07", Level: "high_risk", Reasoning: "The log also held message texts with order details.", AssessedAt: tsAt(30),
		}}}),
		entry(23, "breach-desk", &pb.Entry{Event: &pb.Entry_BreachSubjectsNotified{BreachSubjectsNotified: &pb.BreachSubjectsNotified{
			BreachId: "brc-2026-07", NotifiedAt: tsAt(40), Method: "sms", SubjectsNotified: 1200,
		}}}),
	)
	return b
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n%s", name, got)
	}
}

var indexMarker = regexp.MustCompile(`#[0-9]`)

func TestNotificationGolden(t *testing.T) {
	for _, tc := range []struct {
		name     string
		b        *pb.GetBreachResponse
		now      float64
		lang     string
		missing  []string // substrings expected among "still to provide"
		noMiss   bool
		headings int
	}{
		{"in-time.en.md", complete(), 10, "en", []string{"Other supervisory"}, false, 11},
		{"in-time.de.md", complete(), 10, "de", []string{"Andere Aufsichts"}, false, 11},
		{"late.en.md", sparse(), 80, "en", []string{"Reasons for the delay", "Began", "How it was found", "Risk assessment", "Controller", "Supervisory authority", "Safeguards"}, false, 11},
		{"followup.en.md", followed(), 50, "en", nil, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Notification(tc.b, Options{Lang: tc.lang, Now: detected.Add(time.Duration(tc.now * float64(time.Hour)))})
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Blocks) != tc.headings {
				t.Errorf("%d blocks, want %d", len(d.Blocks), tc.headings)
			}
			for _, bl := range d.Blocks {
				for _, l := range bl.Lines {
					if indexMarker.MatchString(l) {
						t.Errorf("block %d holds an entry index: %q", bl.No, l)
					}
				}
			}
			if tc.noMiss != (len(d.Missing) == 0) {
				t.Errorf("still to provide: %q", d.Missing)
			}
			for _, m := range tc.missing {
				if !strings.Contains(strings.Join(d.Missing, "\n"), m) {
					t.Errorf("still to provide %q lacks %q", d.Missing, m)
				}
			}
			var buf bytes.Buffer
			if err := d.Markdown(&buf); err != nil {
				t.Fatal(err)
			}
			md := buf.String()
			if len(d.Missing) > 0 && strings.Index(md, d.MissingHeading) > strings.Index(md, "## 1.") {
				t.Error("the facts still to provide do not come first")
			}
			golden(t, tc.name, buf.Bytes())
		})
	}
}

func TestNotificationLateHasDelayOnlyWhenLate(t *testing.T) {
	d, _ := Notification(complete(), Options{Now: detected.Add(10 * time.Hour)})
	if strings.Contains(strings.Join(d.Missing, " "), "delay") {
		t.Errorf("an in-time draft asks for a delay reason: %q", d.Missing)
	}
	d, _ = Notification(complete(), Options{Now: detected.Add(73 * time.Hour)})
	if !strings.Contains(strings.Join(d.Missing, " "), "delay") {
		t.Errorf("a late draft does not ask for the reasons for the delay: %q", d.Missing)
	}
}

func TestCommunicationGolden(t *testing.T) {
	for _, lang := range []string{"en", "de"} {
		d, err := Communication(complete(), Options{Lang: lang})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := d.Markdown(&buf); err != nil {
			t.Fatal(err)
		}
		if indexMarker.Match(buf.Bytes()) || len(d.Appendix) > 0 {
			t.Errorf("the communication cites entries:\n%s", buf.String())
		}
		for _, want := range []string{"dpo@example.com", "Unwanted calls", "keys rotated"} {
			if !strings.Contains(buf.String(), want) {
				t.Errorf("%s communication lacks %q (Art. 34(2) with 33(3)(b)-(d))", lang, want)
			}
		}
		golden(t, "communication."+lang+".md", buf.Bytes())
	}
}

func TestHTMLEscapes(t *testing.T) {
	b := sparse()
	b.Entries[0].Entry.GetBreachDetected().Description = "<script>alert(1)</script>"
	d, _ := Notification(b, Options{Now: detected})
	var buf bytes.Buffer
	if err := d.HTML(&buf); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "<script>") || !strings.Contains(buf.String(), "&lt;script&gt;") {
		t.Error("the HTML draft does not escape the description")
	}
	for _, bl := range d.Blocks {
		if !strings.Contains(buf.String(), bl.Heading) {
			t.Errorf("the HTML draft lacks block %q", bl.Heading)
		}
	}
}

// The PDF is rendered with poppler's pdftoppm: it must be a real PDF with
// pages that carry ink.
func TestPDFRenders(t *testing.T) {
	bin, err := exec.LookPath("pdftoppm")
	if err != nil {
		msg := "pdftoppm (poppler-utils) is not installed: apt-get install -y poppler-utils (.ci/run installs it)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("requires pdftoppm: " + msg)
	}
	d, err := Notification(complete(), Options{Lang: "de", Now: detected.Add(80 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pdf := filepath.Join(dir, "n.pdf")
	var buf bytes.Buffer
	if err := d.PDF(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte("%PDF-")) {
		t.Fatal("not a PDF")
	}
	if err := os.WriteFile(pdf, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-png", "-r", "40", pdf, filepath.Join(dir, "page")).CombinedOutput()
	if err != nil {
		t.Fatalf("pdftoppm: %v\n%s", err, out)
	}
	pages, _ := filepath.Glob(filepath.Join(dir, "page*.png"))
	if len(pages) < 1 {
		t.Fatal("pdftoppm rendered no page")
	}
	f, err := os.Open(pages[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	dark := 0
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			if r, g, b, _ := img.At(x, y).RGBA(); r+g+b < 3*0x8000 {
				dark++
			}
		}
	}
	if dark < 500 {
		t.Errorf("the first page has %d dark pixels: no text was rendered", dark)
	}
	if text, err := exec.Command("pdftotext", pdf, "-").Output(); err == nil && !strings.Contains(string(text), "Maßnahmen") {
		t.Errorf("pdftotext does not find the German text:\n%s", text)
	}
}
