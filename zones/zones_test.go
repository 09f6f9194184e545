package zones

import (
	"archive/zip"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite names.txt from the toolchain's lib/time/zoneinfo.zip")

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"Europe/Berlin", true},
		{"America/New_York", true},
		{"UTC", true},
		{"right/UTC", false},
		{"posix/Europe/Berlin", false},
		{"Factory", false},
		{"Local", false},
		{"", false},
		{"Mars/Olympus", false},
		{"../../etc/passwd", false},
		{"europe/berlin", false},
	} {
		if got := Valid(tc.name); got != tc.want {
			t.Errorf("Valid(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Every listed zone loads with the host's zoneinfo hidden, from the
// embedded tzdata alone.
func TestEveryZoneLoadsFromEmbeddedData(t *testing.T) {
	t.Setenv("ZONEINFO", filepath.Join(t.TempDir(), "none.zip"))
	for n := range names() {
		if _, err := Load(n); err != nil {
			t.Errorf("Load(%q): %v", n, err)
		}
	}
}

// names.txt is the toolchain's zoneinfo.zip, which time/tzdata embeds.
func TestNamesAreTheToolchains(t *testing.T) {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Skipf("go env GOROOT: %v", err)
	}
	z, err := zip.OpenReader(filepath.Join(strings.TrimSpace(string(out)), "lib", "time", "zoneinfo.zip"))
	if err != nil {
		t.Skipf("the toolchain's zoneinfo.zip: %v", err)
	}
	defer z.Close()
	var want []string
	for _, f := range z.File {
		if !strings.HasSuffix(f.Name, "/") {
			want = append(want, f.Name)
		}
	}
	slices.Sort(want)
	text := strings.Join(want, "\n") + "\n"
	if *update {
		if err := os.WriteFile("names.txt", []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if text != namesTxt {
		t.Errorf("names.txt differs from the toolchain's zoneinfo.zip; run go test ./zones -update")
	}
}
