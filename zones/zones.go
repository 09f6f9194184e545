// Package zones names the IANA time zones a decision may use: exactly those
// of the tzdata embedded in every binary that imports this package
// (time/tzdata), so that a decision made with a zone replays on any machine,
// whatever zoneinfo its host has or lacks. Host-only names (right/…,
// posix/…) are not zones here, nor Factory, which is no place's time.
package zones

import (
	_ "embed"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // the zones Valid accepts are loadable everywhere
)

// names.txt lists the files of the Go toolchain's lib/time/zoneinfo.zip,
// which time/tzdata embeds; TestNamesAreTheToolchains keeps it in step.
//
//go:embed names.txt
var namesTxt string

var names = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{}
	for _, n := range strings.Fields(namesTxt) {
		m[n] = true
	}
	delete(m, "Factory")
	return m
})

// Valid reports whether name is a time zone of the embedded tzdata, such
// as "Europe/Berlin" or "UTC". "Local", "" and names only a host's
// zoneinfo has are not valid.
func Valid(name string) bool { return names()[name] }

// Load returns the location of a valid zone name.
func Load(name string) (*time.Location, error) {
	if !Valid(name) {
		return nil, &UnknownZoneError{Name: name}
	}
	return time.LoadLocation(name)
}

// UnknownZoneError is a name that is not a zone of the embedded tzdata.
type UnknownZoneError struct{ Name string }

func (e *UnknownZoneError) Error() string {
	return "zones: " + strings.ToValidUTF8(e.Name, "?") + " is not an IANA time zone of the embedded tzdata (such as Europe/Berlin)"
}
